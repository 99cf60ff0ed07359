"""``GET /settings`` (admin): the gateway's effective settings with every secret
masked, audited as ``settings.shown`` (one entry per call); ``spanlab config show``
shows the same and is audited with the actor ``cli``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from tests.access_helpers import ADMIN_KEY, keyed_gateway
from tests.conftest import GatewayFactory

PROVIDER_KEY = "sk-provider-canary-5e6f7a8b"
HEADER_SECRET = "header-canary-1a2b3c"
PROXY_PASSWORD = "proxy-pw-canary-4d5e"
OTLP_PASSWORD = "otlp-pw-canary-9f8e"
METRICS_TOKEN = "metrics-token-canary-77aa88bb99cc"
CANARIES = (ADMIN_KEY, PROVIDER_KEY, HEADER_SECRET, PROXY_PASSWORD, OTLP_PASSWORD, METRICS_TOKEN)


def secret_overrides() -> dict[str, object]:
    return {
        "metrics_token": METRICS_TOKEN,
        "otlp_endpoint": f"https://user:{OTLP_PASSWORD}@otel.test:4318",
        "providers": {
            "openai": {
                "kind": "openai",
                "base_url": "http://upstream.test/v1",
                "api_key_env": "SPANLAB_TEST_CANARY_KEY",
                "headers": {"x-extra-auth": HEADER_SECRET},
                "proxy": f"http://user:{PROXY_PASSWORD}@proxy.test:3128",
            },
        },
    }


async def test_settings_are_shown_to_admins_with_every_secret_masked(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANLAB_TEST_CANARY_KEY", PROVIDER_KEY)
    keyed = await keyed_gateway(make_gateway, **secret_overrides())
    gw = keyed.gw
    response = await gw.client.get("/settings", headers=keyed.headers("admin"))
    assert response.status_code == 200, response.text
    shown = response.json()
    for canary in CANARIES:
        assert canary not in response.text, canary
    assert shown["admin_key"] == "(set)" and shown["metrics_token"] == "(set)"
    openai = shown["providers"]["openai"]
    assert openai["api_key_set"] is True and openai["api_key_env"] == "SPANLAB_TEST_CANARY_KEY"
    assert openai["headers"] == {"x-extra-auth": "(set)"}
    assert "proxy.test" in openai["proxy"] and "otel.test" in shown["otlp_endpoint"]
    assert shown["port"] == gw.state.settings.port and shown["db"] == gw.state.settings.db
    # Admins only.
    for who, status in (("write", 403), ("read", 403), ("proxy", 403), (None, 401)):
        refused = await gw.client.get("/settings", headers=keyed.headers(who))
        assert refused.status_code == status, who
    # One entry per call, by who asked; no secret in the log either.
    await gw.client.get("/settings", headers={"x-spanlab-key": ADMIN_KEY})
    entries = (
        await gw.client.get("/audit?type=settings.shown", headers=keyed.headers("admin"))
    ).json()["data"]
    keys = (await gw.client.get("/keys", headers=keyed.headers("admin"))).json()["data"]
    admin_id = next(k["id"] for k in keys if k["name"] == "admin")
    assert [e["payload"]["actor"] for e in entries] == ["admin", admin_id]
    assert all(e["payload"]["path"] == "/settings" for e in entries)
    rows = await gw.state.stores.database.fetch("SELECT * FROM events")  # type: ignore[attr-defined]
    dumped = orjson.dumps([dict(r) for r in rows]).decode()
    for canary in CANARIES:
        assert canary not in dumped, canary


async def test_with_keys_off_settings_are_shown_as_the_rest(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    response = await gw.client.get("/settings")
    assert response.status_code == 200
    assert response.json()["admin_key"] == ""
    entries = (await gw.client.get("/audit?type=settings.shown")).json()["data"]
    assert [e["payload"]["actor"] for e in entries] == ["local"]


def test_config_show_masks_the_same_and_is_audited_with_actor_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    env = {
        "SPANLAB_TEST_CANARY_KEY": PROVIDER_KEY,
        "SPANLAB_ADMIN_KEY": ADMIN_KEY,
        "SPANLAB_METRICS_TOKEN": METRICS_TOKEN,
        "SPANLAB_DB": db,
        "SPANLAB_PROXY": f"http://user:{PROXY_PASSWORD}@proxy.test:3128",
    }
    # No database yet: shown, and none is created for the entry.
    first = runner.invoke(cli, ["config", "show"], env=env)
    assert first.exit_code == 0, first.output
    assert not Path(db).exists()
    assert runner.invoke(cli, ["keys", "list", "--db", db]).exit_code == 0  # creates it
    shown = runner.invoke(cli, ["config", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    for canary in (ADMIN_KEY, PROVIDER_KEY, PROXY_PASSWORD, METRICS_TOKEN):
        assert canary not in shown.output
    assert orjson.loads(shown.stdout)["admin_key"] == "(set)"
    audit = runner.invoke(cli, ["audit", "--db", db, "--json"])
    assert audit.exit_code == 0, audit.output
    entries = [e for e in orjson.loads(audit.stdout) if e["type"] == "settings.shown"]
    assert [e["payload"]["actor"] for e in entries] == ["cli"]
