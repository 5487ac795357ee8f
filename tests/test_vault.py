"""The vault on its own: format, binding, key ring, local ring generation, previews."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from stich.config import SettingsError, load_settings, parse_key_ring
from stich.crypto.vault import (
    FORMAT_V1,
    NONCE_BYTES,
    Envelope,
    KeyNotInRing,
    SecretBinding,
    SecretUnreadable,
    Vault,
    VaultNotConfigured,
    generate_key_entry,
)
from stich.secrets.service import preview_of

KEY_A = os.urandom(32)
KEY_B = os.urandom(32)
BINDING = SecretBinding(secret_id="s-1", user_id="u-1", provider="openai")
VALUE = "sk-proj-" + "x" * 40


def test_round_trip_and_stored_format() -> None:
    vault = Vault({"a": KEY_A})
    blob = vault.encrypt(VALUE, BINDING)
    assert blob[0] == FORMAT_V1
    envelope = Envelope.parse(blob, secret_id="s-1")
    assert envelope.key_id == "a"
    assert len(envelope.nonce) == NONCE_BYTES
    assert VALUE.encode() not in blob
    assert vault.decrypt(blob, BINDING) == VALUE


def test_every_encryption_uses_a_fresh_nonce() -> None:
    vault = Vault({"a": KEY_A})
    blobs = [vault.encrypt(VALUE, BINDING) for _ in range(50)]
    nonces = {Envelope.parse(b, secret_id="s").nonce for b in blobs}
    assert len(nonces) == 50
    assert len(set(blobs)) == 50


@pytest.mark.parametrize(
    "other",
    [
        SecretBinding(secret_id="s-2", user_id="u-1", provider="openai"),
        SecretBinding(secret_id="s-1", user_id="u-2", provider="openai"),
        SecretBinding(secret_id="s-1", user_id="u-1", provider="anthropic"),
        # Same bytes when fields are joined naively: the length prefixes keep them apart.
        SecretBinding(secret_id="s-1u", user_id="-1", provider="openai"),
    ],
)
def test_ciphertext_is_bound_to_row_owner_and_provider(other: SecretBinding) -> None:
    vault = Vault({"a": KEY_A})
    blob = vault.encrypt(VALUE, BINDING)
    with pytest.raises(SecretUnreadable) as info:
        vault.decrypt(blob, other)
    assert info.value.status == 409
    assert VALUE not in str(info.value)
    assert "s-2" in str(info.value) or other.secret_id in str(info.value)


def test_tampered_or_truncated_ciphertext_is_unreadable() -> None:
    vault = Vault({"a": KEY_A})
    blob = bytearray(vault.encrypt(VALUE, BINDING))
    flipped = bytes(blob[:-1]) + bytes([blob[-1] ^ 1])
    for bad in (flipped, bytes(blob[:20]), b"", b"\x02" + bytes(blob[1:]), b"\x01\xff"):
        with pytest.raises(SecretUnreadable):
            vault.decrypt(bad, BINDING)


def test_header_key_id_is_authenticated() -> None:
    # Relabelling a ciphertext with another key id of the same key must still fail.
    vault = Vault({"a": KEY_A, "b": KEY_A})
    blob = vault.encrypt(VALUE, BINDING)
    relabelled = b"\x01\x01b" + blob[3:]
    with pytest.raises(SecretUnreadable):
        vault.decrypt(relabelled, BINDING)


def test_first_key_encrypts_all_keys_decrypt() -> None:
    old = Vault({"a": KEY_A})
    blob_a = old.encrypt(VALUE, BINDING)
    ring = Vault({"b": KEY_B, "a": KEY_A})
    assert ring.active_key_id == "b"
    blob_b = ring.encrypt(VALUE, BINDING)
    assert Envelope.parse(blob_b, secret_id="s").key_id == "b"
    assert ring.decrypt(blob_a, BINDING) == VALUE
    assert ring.decrypt(blob_b, BINDING) == VALUE


def test_a_ring_without_the_old_key_fails_clearly() -> None:
    blob = Vault({"a": KEY_A}).encrypt(VALUE, BINDING)
    with pytest.raises(KeyNotInRing) as info:
        Vault({"b": KEY_B}).decrypt(blob, BINDING)
    assert info.value.status == 503
    assert "'a'" in info.value.message and "STICH_SECRETS_KEYS" in info.value.message
    # A different key under the old id is caught by the tag, not served as garbage.
    with pytest.raises(SecretUnreadable):
        Vault({"a": KEY_B}).decrypt(blob, BINDING)


def test_an_empty_ring_refuses_clearly() -> None:
    vault = Vault({})
    assert not vault.configured
    with pytest.raises(VaultNotConfigured) as info:
        vault.encrypt(VALUE, BINDING)
    assert info.value.status == 503
    blob = Vault({"a": KEY_A}).encrypt(VALUE, BINDING)
    with pytest.raises(VaultNotConfigured):
        vault.decrypt(blob, BINDING)


def test_repr_hides_keys() -> None:
    vault = Vault({"a": KEY_A})
    text = repr(vault)
    assert "a" in text
    assert KEY_A.hex() not in text and base64.b64encode(KEY_A).decode() not in text


def test_generated_entries_parse_and_differ() -> None:
    first, second = generate_key_entry(), generate_key_entry()
    assert first != second
    ring = parse_key_ring(f"{first},{second}")
    assert [len(key) for key in ring.values()] == [32, 32]
    assert next(iter(parse_key_ring(generate_key_entry("rotated2")))) == "rotated2"
    with pytest.raises(ValueError, match="KEY_ID"):
        generate_key_entry("not an id")


def test_malformed_ring_stops_start_up(tmp_path: Path) -> None:
    short = base64.b64encode(b"k" * 16).decode()
    good = base64.b64encode(b"k" * 32).decode()
    malformed = (
        f"a:{short}",
        "a:not-base64!",
        "nocolon",
        f"a:{good},a:{good}",
        f"ключ:{good}",  # key ids are ASCII: they are written into every ciphertext
        f"{'x' * 33}:{good}",
    )
    for ring in malformed:
        with pytest.raises(SettingsError, match="STICH_SECRETS_KEYS"):
            load_settings(secrets_keys=ring, env="test")


def test_local_ring_is_generated_once_outside_production(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secrets.keys"
    settings = load_settings(env="development", secrets_keys_file=path)
    first = Vault.from_settings(settings)
    assert first.active_key_id == "local1"
    assert path.stat().st_mode & 0o777 == 0o600
    blob = first.encrypt(VALUE, BINDING)
    again = Vault.from_settings(settings)  # reads the same file: old values still decrypt
    assert again.decrypt(blob, BINDING) == VALUE
    assert [p.name for p in path.parent.iterdir()] == ["secrets.keys"]  # no temp files left


def test_production_without_a_ring_is_unconfigured_not_invented(tmp_path: Path) -> None:
    path = tmp_path / "secrets.keys"
    settings = load_settings(
        env="production", server_key="s" * 40, secrets_keys_file=path, database_url="sqlite:///x.db"
    )
    vault = Vault.from_settings(settings)
    assert not vault.configured
    assert not path.exists()
    with pytest.raises(VaultNotConfigured, match="STICH_SECRETS_KEYS"):
        vault.encrypt(VALUE, BINDING)


@pytest.mark.parametrize(
    ("value", "preview"),
    [
        ("sk-abcdefghijklmnopqrstuvwxyz0123456789", "sk-a…6789"),  # 39 chars: 4 + 4
        ("abcdefghijklmnopqrst", "abc…st"),  # 20 chars: 5 shown
        ("abcdefgh", "a…h"),  # 8 chars: 2 shown
        ("abcdefg", "a…"),  # 7 chars: 1 shown
        ("abc", "…"),  # too short to show anything
        ("", "…"),
    ],
)
def test_preview_never_shows_more_than_a_quarter(value: str, preview: str) -> None:
    assert preview_of(value) == preview
    shown = len(preview_of(value)) - 1
    assert shown <= len(value) // 4
    assert shown <= 8


def test_no_secret_material_in_reprs_or_encoding_errors() -> None:
    vault = Vault({"a": KEY_A})
    blob = vault.encrypt(VALUE, BINDING)
    envelope = Envelope.parse(blob, secret_id="s-1")
    assert envelope.sealed.hex() not in repr(envelope) and "sealed" not in repr(envelope)
    with pytest.raises(ValueError, match="valid Unicode") as info:
        vault.encrypt("sk-SECRET-\ud800", BINDING)
    assert "SECRET" not in str(info.value) and info.value.__suppress_context__
