"""Settings: the table, the example file, the environment, and errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.config import SETTINGS, Settings, example_toml
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_file_is_generated_from_the_settings_table() -> None:
    shipped = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert shipped == example_toml(), (
        "config.example.toml drifted from gateway/config_table.py SETTINGS:"
        " run `spanlab config example > config.example.toml`"
    )


def test_example_file_documents_every_setting_with_its_default() -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    parsed = tomllib.loads(text)
    for setting in SETTINGS:
        assert parsed[setting.name] == setting.default, setting.name
        first_words = " ".join(setting.help.split()[:4])
        assert first_words in " ".join(text.replace("# ", " ").split()), setting.name
    # The example loads as a valid configuration, and equals the embedded defaults.
    assert Settings.from_mapping(parsed) == Settings.from_mapping({})


def test_dataclass_defaults_match_the_table() -> None:
    defaults = Settings()
    for setting in SETTINGS:
        assert getattr(defaults, setting.name) == setting.default, setting.name


def test_no_config_gives_the_public_providers() -> None:
    settings = Settings.load(env={})
    assert settings.providers["openai"].base_url == "https://api.openai.com/v1"
    assert settings.providers["openai"].api_key_env == "OPENAI_API_KEY"
    assert settings.providers["anthropic"].kind == "anthropic"
    assert settings.providers["anthropic"].api_key_env == "ANTHROPIC_API_KEY"
    assert settings.host == "127.0.0.1"


def test_precedence_file_then_env_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "spanlab.toml"
    config.write_text(
        'port = 9000\nlog_level = "debug"\nread_timeout = 5\n'
        '[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:11434/v1"\n'
    )
    env = {
        "SPANLAB_LOG_LEVEL": "warning",
        "SPANLAB_CAPTURE": "false",
        "SPANLAB_PROVIDERS__LOCAL__BASE_URL": "http://127.0.0.1:9999/v1",
        "UNRELATED": "x",
    }
    settings = Settings.load(config, env=env, overrides={"port": 7000, "db": None})
    assert settings.port == 7000
    assert settings.log_level == "warning"
    assert settings.capture is False
    assert settings.read_timeout == 5.0
    assert settings.db == "spanlab.db"
    assert settings.providers["local"].base_url == "http://127.0.0.1:9999/v1"
    assert set(settings.providers) == {"local"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("port = 'eighty'", "port"),
        ("colour = 'blue'", "unknown setting"),
        ("[providers.x]\nkind = 'grpc'\nbase_url = 'http://a'", "kind must be"),
        ("[providers.x]\nkind = 'openai'", "base_url"),
        ("[providers.x]\nbase_url = 'ftp://a'", "base_url"),
        ("[models]\nfast = 'nowhere/model'", "unknown provider"),
        ("default_provider = 'missing'", "default_provider"),
        ("port = ", "invalid TOML"),
        ("[prices]\nm = { input = 'cheap' }", "prices"),
        ("max_client_connections = 0", "max_client_connections must be above 0"),
        ("client_header_timeout = -1.0", "client_header_timeout must be above 0"),
        ("client_body_timeout = 0", "client_body_timeout must be above 0"),
    ],
)
def test_bad_configuration_says_what_is_wrong(tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        Settings.load(config, env={})


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Settings.load(tmp_path / "nope.toml", env={})
