"""With keys on, no gateway key, key hash or session cookie reaches the logs, the
database or the upstream: keys are used on the proxy path (header and bearer), a wrong
key is tried, the UI signs in and out; after a graceful shutdown (debug logging) the
log, the SQLite files and what the upstream received are searched for them."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import StartGateway
from tests.e2e.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e

ADMIN_KEY = "admin-canary-" + uuid.uuid4().hex


def test_no_key_hash_or_cookie_in_the_logs_or_the_database(
    start_gateway: StartGateway, mock_upstream: MockUpstream, test_id: str
) -> None:
    gateway = start_gateway(env={"SPANLAB_ADMIN_KEY": ADMIN_KEY}, log_level="debug")
    url = gateway.url
    admin = {"x-spanlab-key": ADMIN_KEY}
    made = httpx.post(
        url + "/keys", json={"name": "canary", "scopes": ["proxy", "read"]}, headers=admin
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "canary"}]}
    by_header = httpx.post(
        url + "/v1/chat/completions",
        json=chat,
        headers={"x-spanlab-key": key, "x-test-id": test_id + "-h"},
    )
    assert by_header.status_code == 200, by_header.text
    by_bearer = httpx.post(
        url + "/v1/chat/completions",
        json=chat,
        headers={"authorization": f"Bearer {key}", "x-test-id": test_id + "-b"},
    )
    assert by_bearer.status_code == 200, by_bearer.text
    wrong = key[:-6] + "ZZZZZZ"
    assert httpx.get(url + "/spans", headers={"x-spanlab-key": wrong}).status_code == 401
    signed = httpx.post(url + "/session", json={"key": key})
    assert signed.status_code == 200
    cookie = signed.cookies["spanlab_session"]
    assert httpx.get(url + "/spans", cookies={"spanlab_session": cookie}).status_code == 200
    out = httpx.delete(url + "/session", cookies={"spanlab_session": cookie})
    assert out.status_code == 200
    gateway.stop_gracefully()

    secrets = {
        "key": key,
        "key secret": key.split("_", 2)[2],  # slk_<id>_<secret>: the secret may hold "_"
        "wrong key": wrong,
        "admin key": ADMIN_KEY,
        "key hash": hashlib.sha256(key.encode()).hexdigest(),
        "admin hash": hashlib.sha256(ADMIN_KEY.encode()).hexdigest(),
        "cookie": cookie,
    }
    log = gateway.log_path.read_bytes()
    assert b"DEBUG" in log  # debug logging was on: the search covers the most
    files = sorted(Path(gateway.workdir).glob("spanlab.db*"))
    assert files
    stored = b"".join(p.read_bytes() for p in files)
    for what, secret in secrets.items():
        assert secret.encode() not in log, f"{what} in the gateway log"
        if what != "key hash":  # the key's hash is what the database is meant to hold
            assert secret.encode() not in stored, f"{what} in the database"
    assert secrets["key hash"].encode() in stored
    for suffix in ("-h", "-b"):
        received = mock_upstream.find(test_id + suffix)
        sent = repr(received.headers).encode() + received.body
        assert key.encode() not in sent, "the gateway key went upstream"
        assert ("x-spanlab-key", key) not in received.headers
