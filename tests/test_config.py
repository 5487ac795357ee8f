"""Settings: validation, one clear line on error, the local server key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from stich.config import Environment, SettingsError, load_settings, parse_key_ring


def test_defaults_are_the_local_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STICH_DATABASE_URL", raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite:///./stich.db"
    assert settings.backend == "sqlite"
    assert settings.env is Environment.DEVELOPMENT


def test_postgres_urls_are_pinned_to_psycopg() -> None:
    settings = load_settings(database_url="postgresql://u@localhost/app")
    assert settings.database_url == "postgresql+psycopg://u@localhost/app"


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"database_url": "nonsense"}, "STICH_DATABASE_URL"),
        ({"database_url": "mysql://x@y/z"}, "STICH_DATABASE_URL"),
        ({"database_url": "sqlite://"}, "STICH_DATABASE_URL"),
        ({"port": 0}, "STICH_PORT"),
        ({"log_level": "LOUD"}, "STICH_LOG_LEVEL"),
        ({"server_key": "short"}, "STICH_SERVER_KEY"),
        ({"secrets_keys": "k1:notbase64!"}, "STICH_SECRETS_KEYS"),
        ({"trusted_proxies": "not-an-ip"}, "STICH_TRUSTED_PROXIES"),
    ],
)
def test_invalid_settings_name_the_setting(overrides: dict[str, object], setting: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**overrides)
    message = str(caught.value)
    assert setting in message
    assert "\n" not in message


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STICH_PORT", "9000")
    monkeypatch.setenv("STICH_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16")
    settings = load_settings()
    assert settings.port == 9000
    assert settings.trusted_proxies == ["10.0.0.1", "192.168.0.0/16"]


def test_production_requires_a_server_key() -> None:
    with pytest.raises(SettingsError, match="STICH_SERVER_KEY is required"):
        load_settings(env="production")
    assert load_settings(env="production", server_key="s" * 40).server_key is not None


def test_replicas_need_postgres() -> None:
    with pytest.raises(SettingsError, match="PostgreSQL"):
        load_settings(read_replica_urls="postgresql://r@localhost/app")


def test_local_server_key_is_generated_once(tmp_path: Path) -> None:
    key_file = tmp_path / "nested" / "server.key"
    settings = load_settings(server_key_file=key_file)
    first = settings.server_key_bytes()
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o077 == 0  # readable by the owner only
    assert load_settings(server_key_file=key_file).server_key_bytes() == first
    assert len(first) >= 32


def test_key_ring_parsing() -> None:
    k1 = base64.b64encode(b"\x01" * 32).decode()
    k2 = base64.b64encode(b"\x02" * 32).decode()
    ring = parse_key_ring(f"new:{k2}, old:{k1}")
    assert list(ring) == ["new", "old"]
    with pytest.raises(ValueError, match="256 bits"):
        parse_key_ring("k:" + base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="twice"):
        parse_key_ring(f"k:{k1},k:{k2}")


def test_every_setting_is_documented() -> None:
    from stich.config import Settings

    reference = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"STICH_{name.upper()}" not in reference]
    assert missing == []
