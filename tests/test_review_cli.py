"""Review finding on the CLI: a password in a provider's base_url is not shown."""

from __future__ import annotations

import orjson
from click.testing import CliRunner

from gateway.cli.main import cli


def test_config_show_hides_base_url_credentials() -> None:
    result = CliRunner().invoke(
        cli,
        ["config", "show"],
        env={"SPANLAB_PROVIDERS__OPENAI__BASE_URL": "https://spanlab:pw-hidden@llm.test/v1"},
    )
    assert result.exit_code == 0, result.output
    assert "pw-hidden" not in result.output
    shown = orjson.loads(result.output)
    assert shown["providers"]["openai"]["base_url"] == "https://[REDACTED]@llm.test/v1"
