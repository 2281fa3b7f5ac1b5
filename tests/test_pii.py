"""Field encryption and blind indexes of personal data (shared/pii.py), in-process only."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from shared.pii import (
    KEY_BYTES,
    Keyring,
    PiiError,
    blind_index,
    decrypt,
    encrypt,
    ensure_dev_keyring,
    id_number_index,
    key_id_of,
    normalize_for_index,
    reencrypt,
)

CTX = "identity.person.name"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def secret_json(**overrides: object) -> tuple[str, list[str]]:
    """A valid keyring file with fields overridden, plus every base64 key it contains."""
    data: dict[str, object] = {
        "current": "k2",
        "keys": {"k1": b64(b"\x01" * KEY_BYTES), "k2": b64(b"\x02" * KEY_BYTES)},
        "index_key": b64(b"\x03" * KEY_BYTES),
    }
    data.update(overrides)
    secrets: list[str] = []
    keys = data.get("keys")
    if isinstance(keys, dict):
        secrets.extend(v for v in keys.values() if isinstance(v, str))
    if isinstance(data.get("index_key"), str):
        secrets.append(str(data["index_key"]))
    return json.dumps(data), secrets


# ---- encryption -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["张三", "欧阳娜娜", "阿依古丽·买买提", "", "𠮷野家 ☃"])
def test_round_trip(keyring: Keyring, name: str) -> None:
    blob = encrypt(keyring, name, context=CTX)
    assert decrypt(keyring, blob, context=CTX) == name


def test_blob_layout(keyring: Keyring) -> None:
    blob = encrypt(keyring, "张三", context=CTX)
    assert blob[0] == 1
    assert blob[1] == len("k1")
    assert blob[2:4] == b"k1"
    # header + 12-byte nonce + 6 bytes of UTF-8 + 16-byte tag
    assert len(blob) == 4 + 12 + len("张三".encode()) + 16
    assert key_id_of(blob) == "k1"


def test_same_plaintext_encrypts_differently(keyring: Keyring) -> None:
    a = encrypt(keyring, "110101199003077777", context=CTX)
    b = encrypt(keyring, "110101199003077777", context=CTX)
    assert a != b
    assert a[4:16] != b[4:16]  # the nonces


def test_plaintext_does_not_appear_in_blob(keyring: Keyring) -> None:
    for plaintext in ["110101199003077777", "张三丰", "13800138000"]:
        blob = encrypt(keyring, plaintext, context=CTX)
        assert plaintext.encode("utf-8") not in blob


def test_wrong_context_fails(keyring: Keyring) -> None:
    blob = encrypt(keyring, "110101199003077777", context="identity.person.id_number")
    with pytest.raises(PiiError) as info:
        decrypt(keyring, blob, context="identity.person.phone")
    assert "110101199003077777" not in str(info.value)


@pytest.mark.parametrize("position", ["version", "key_id_len", "nonce", "ciphertext", "tag"])
def test_tampered_byte_fails(keyring: Keyring, position: str) -> None:
    blob = bytearray(encrypt(keyring, "张三", context=CTX))
    index = {"version": 0, "key_id_len": 1, "nonce": 5, "ciphertext": 17, "tag": len(blob) - 1}[position]
    blob[index] ^= 0x01
    with pytest.raises(PiiError) as info:
        decrypt(keyring, bytes(blob), context=CTX)
    assert "张三" not in str(info.value)


def test_header_rewritten_to_another_key_fails() -> None:
    # Both keys are in the keyring, so only the authenticated header catches the swap.
    ring = Keyring.generate().with_new_current_key()
    blob = bytearray(encrypt(ring, "张三", context=CTX))
    assert bytes(blob[2:4]) == b"k2"
    blob[3] = ord("1")
    with pytest.raises(PiiError):
        decrypt(ring, bytes(blob), context=CTX)


@pytest.mark.parametrize("blob", [
    b"", b"\x01", b"\x01\x02k1", b"\x01\x00" + bytes(40), b"\x01\x02\xff\xfe" + bytes(40), b"\x02\x02k1" + bytes(40),
])
def test_malformed_blob_fails(keyring: Keyring, blob: bytes) -> None:
    with pytest.raises(PiiError):
        decrypt(keyring, blob, context=CTX)


def test_unknown_key_id_fails(keyring: Keyring) -> None:
    other = Keyring.generate(key_id="k9")
    blob = encrypt(other, "张三", context=CTX)
    with pytest.raises(PiiError, match="k9") as info:
        decrypt(keyring, blob, context=CTX)
    assert "张三" not in str(info.value)


def test_empty_context_is_refused(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="context"):
        encrypt(keyring, "张三", context="")


# ---- rotation ---------------------------------------------------------------------------------


def test_rotation(keyring: Keyring) -> None:
    old_blob = encrypt(keyring, "李四", context=CTX)
    old_index = blind_index(keyring, "13800138000", kind="phone")

    rotated = keyring.with_new_current_key()
    assert rotated.current_key_id == "k2"
    assert rotated.key_ids == ("k1", "k2")
    assert keyring.current_key_id == "k1"  # the original is untouched

    assert decrypt(rotated, old_blob, context=CTX) == "李四"
    new_blob = encrypt(rotated, "王五", context=CTX)
    assert key_id_of(new_blob) == "k2"
    with pytest.raises(PiiError):
        decrypt(keyring, new_blob, context=CTX)  # the old keyring does not know k2

    moved = reencrypt(rotated, old_blob, context=CTX)
    assert key_id_of(old_blob) == "k1"
    assert key_id_of(moved) == "k2"
    assert decrypt(rotated, moved, context=CTX) == "李四"
    assert reencrypt(rotated, moved, context=CTX) == moved  # already current: unchanged

    assert blind_index(rotated, "13800138000", kind="phone") == old_index
    assert rotated.with_new_current_key().current_key_id == "k3"


def test_reencrypt_checks_context(keyring: Keyring) -> None:
    blob = encrypt(keyring, "李四", context=CTX)
    with pytest.raises(PiiError):
        reencrypt(keyring.with_new_current_key(), blob, context="identity.person.phone")


def test_rotation_rejects_duplicate_key_id(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="already"):
        keyring.with_new_current_key("k1")
    assert keyring.with_new_current_key("2026-q1").current_key_id == "2026-q1"


def test_rotation_survives_serialization(keyring: Keyring) -> None:
    blob = encrypt(keyring, "赵六", context=CTX)
    reloaded = Keyring.from_json(keyring.with_new_current_key().to_json())
    assert reloaded.current_key_id == "k2"
    assert decrypt(reloaded, blob, context=CTX) == "赵六"


# ---- blind index ------------------------------------------------------------------------------


def test_blind_index_is_deterministic_32_bytes(keyring: Keyring) -> None:
    a = blind_index(keyring, "110101199003077777", kind="id_number")
    assert len(a) == 32
    assert a == blind_index(keyring, "110101199003077777", kind="id_number")
    assert a != blind_index(keyring, "110101199003077778", kind="id_number")


@pytest.mark.parametrize("variant", [
    "+86 138-0013-8000",
    "13800138000",
    "138 0013 8000",
    "+8613800138000",
    "008613800138000",
    "8613800138000",
    "(+86) 138 0013 8000",
    "１３８００１３８０００",
])
def test_blind_index_equal_for_equivalent_phones(keyring: Keyring, variant: str) -> None:
    assert blind_index(keyring, variant, kind="phone") == blind_index(keyring, "13800138000", kind="phone")


def test_landline_spellings_match(keyring: Keyring) -> None:
    expected = blind_index(keyring, "010-12345678", kind="phone")
    for variant in ["+86 10 1234 5678", "(010) 1234-5678", "+86 (0)10 12345678", "00861012345678"]:
        assert blind_index(keyring, variant, kind="phone") == expected, variant


def test_foreign_phone_does_not_collide_with_domestic(keyring: Keyring) -> None:
    assert normalize_for_index("+1 415 555 0100", kind="phone") == "+14155550100"
    assert blind_index(keyring, "+1 415 555 0100", kind="phone") != blind_index(keyring, "14155550100", kind="phone")


@pytest.mark.parametrize("variant", ["11010119900307777x", " 11010119900307777X ", "110101 19900307777X",
                                     "１１０１０１１９９００３０７７７７ｘ"])
def test_blind_index_equal_for_equivalent_id_numbers(keyring: Keyring, variant: str) -> None:
    expected = blind_index(keyring, "11010119900307777X", kind="id_number")
    assert blind_index(keyring, variant, kind="id_number") == expected


@pytest.mark.parametrize("canonical", ["11010119900307777X", "320923199001010019", "110101800101001"])
def test_id_number_index_of_a_canonical_number_is_its_blind_index(keyring: Keyring, canonical: str) -> None:
    # Registry loads index the number idnumber.normalize returned without normalizing it again;
    # the stored index must be the one a lookup by any spelling computes.
    assert id_number_index(keyring, canonical) == blind_index(keyring, canonical, kind="id_number")
    assert id_number_index(keyring, canonical) != id_number_index(Keyring.generate(), canonical)


@pytest.mark.parametrize("variant", ["张三", " 张三 ", "张 三", "张\u3000三"])
def test_blind_index_equal_for_equivalent_names(keyring: Keyring, variant: str) -> None:
    assert blind_index(keyring, variant, kind="name") == blind_index(keyring, "张三", kind="name")


def test_minority_name_separators_match(keyring: Keyring) -> None:
    expected = blind_index(keyring, "阿依古丽·买买提", kind="name")
    for variant in ["阿依古丽・买买提", "阿依古丽 • 买买提", "阿依古丽.买买提", "阿依古丽．买买提"]:
        assert blind_index(keyring, variant, kind="name") == expected, variant


def test_latin_name_keeps_word_boundary() -> None:
    assert normalize_for_index("  John   SMITH ", kind="name") == "john smith"
    assert normalize_for_index("John Smith", kind="name") != normalize_for_index("JohnSmith", kind="name")


def test_blind_index_differs_by_kind(keyring: Keyring) -> None:
    value = "13800138000"
    indexes = {blind_index(keyring, value, kind=kind) for kind in ("id_number", "phone", "name")}
    assert len(indexes) == 3


def test_blind_index_depends_on_index_key_only() -> None:
    a, b = Keyring.generate(), Keyring.generate()
    assert blind_index(a, "张三", kind="name") != blind_index(b, "张三", kind="name")


def test_blind_index_rejects_unknown_kind_and_empty_value(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="unknown blind-index kind"):
        blind_index(keyring, "a@example.com", kind="email")
    with pytest.raises(ValueError, match="empty"):
        blind_index(keyring, "  ", kind="name")
    with pytest.raises(ValueError, match="empty"):
        blind_index(keyring, "n/a", kind="phone")


# ---- loading ----------------------------------------------------------------------------------


def test_from_json_loads_valid_file() -> None:
    text, _ = secret_json()
    ring = Keyring.from_json(text)
    assert ring.current_key_id == "k2"
    assert ring.key_ids == ("k1", "k2")
    assert Keyring.from_json(ring.to_json()).to_json() == ring.to_json()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"current": "k3"}, "current key id 'k3'"),
    ({"keys": {"k1": b64(b"\x01" * 16), "k2": b64(b"\x02" * KEY_BYTES)}}, "data key 'k1' must decode to 32 bytes"),
    ({"keys": {"k1": b64(b"\x01" * KEY_BYTES), "k2": "not*base64!"}}, "data key 'k2' is not valid base64"),
    ({"index_key": b64(b"\x03" * 31)}, "index_key must decode to 32 bytes, got 31"),
    ({"index_key": "@@@@" + b64(b"\x03" * KEY_BYTES)}, "index_key is not valid base64"),
    ({"index_key": b64(b"\x02" * KEY_BYTES)}, "index key must be independent"),
    ({"keys": {}}, "'keys' must be a non-empty object"),
    ({"keys": {"bad id!": b64(b"\x01" * KEY_BYTES)}, "current": "bad id!"}, "invalid key id"),
    ({"index-key": "x"}, "unknown fields: 'index-key'"),
])
def test_from_json_errors(overrides: dict[str, object], message: str) -> None:
    text, secrets = secret_json(**overrides)
    with pytest.raises(ValueError) as info:
        Keyring.from_json(text)
    assert message in str(info.value)
    for secret in secrets:
        assert secret not in str(info.value)
        assert secret.rstrip("=") not in str(info.value)


@pytest.mark.parametrize(("field", "message"), [
    ("current", "missing 'current'"),
    ("keys", "missing 'keys'"),
    ("index_key", "missing 'index_key'"),
])
def test_from_json_missing_fields(field: str, message: str) -> None:
    data = json.loads(secret_json()[0])
    del data[field]
    with pytest.raises(ValueError, match=message):
        Keyring.from_json(json.dumps(data))


def test_from_json_not_json_does_not_echo_input() -> None:
    secret = b64(b"\x07" * KEY_BYTES)
    with pytest.raises(ValueError, match="not valid JSON") as info:
        Keyring.from_json('{"current": "k1", "keys": {"k1": "' + secret + '"')
    assert secret not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_from_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pii-keys.json"
    path.write_text(secret_json(current="k7")[0], encoding="utf-8")
    with pytest.raises(ValueError, match=r"pii-keys\.json: current key id 'k7'"):
        Keyring.from_file(path)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="32 bytes, got 16"):
        Keyring({"k1": b"\x01" * 16}, "k1", b"\x02" * KEY_BYTES)
    with pytest.raises(ValueError, match="independent"):
        Keyring({"k1": b"\x01" * KEY_BYTES}, "k1", b"\x01" * KEY_BYTES)
    with pytest.raises(ValueError, match="not among"):
        Keyring({"k1": b"\x01" * KEY_BYTES}, "k2", b"\x02" * KEY_BYTES)


def test_generate_makes_independent_random_keys() -> None:
    a, b = json.loads(Keyring.generate().to_json()), json.loads(Keyring.generate().to_json())
    assert a["keys"]["k1"] != b["keys"]["k1"]
    assert a["index_key"] != a["keys"]["k1"]
    assert len(base64.b64decode(a["index_key"])) == KEY_BYTES


def test_repr_hides_keys(keyring: Keyring) -> None:
    ring = keyring.with_new_current_key()
    data = json.loads(ring.to_json())
    shown = repr(ring) + str(ring)
    assert "k1" in shown and "k2" in shown
    for secret in [*data["keys"].values(), data["index_key"]]:
        assert secret not in shown
        assert secret.rstrip("=") not in shown
    assert "\\x" not in shown


def test_keyring_is_immutable(keyring: Keyring) -> None:
    with pytest.raises(AttributeError):
        keyring._current = "k9"  # type: ignore[misc]


# ---- dev keyring ------------------------------------------------------------------------------


def test_ensure_dev_keyring_creates_0600_file_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / ".minyi" / "keys" / "pii-keys.json"
    created = ensure_dev_keyring(path)
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind

    blob = encrypt(created, "张三", context=CTX)
    reloaded = ensure_dev_keyring(path)
    assert reloaded.to_json() == created.to_json()
    assert decrypt(reloaded, blob, context=CTX) == "张三"
    assert blind_index(reloaded, "张三", kind="name") == blind_index(created, "张三", kind="name")


def test_ensure_dev_keyring_keeps_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "pii-keys.json"
    text, _ = secret_json()
    path.write_text(text, encoding="utf-8")
    assert ensure_dev_keyring(path).to_json() == Keyring.from_json(text).to_json()
    assert path.read_text(encoding="utf-8") == text


def test_ensure_dev_keyring_loser_of_a_race_loads_the_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pii-keys.json"
    winner = Keyring.generate()
    real_generate = Keyring.generate

    def generate_while_another_process_publishes() -> Keyring:
        # Another service finished first, after this one saw no file.
        path.write_text(winner.to_json(), encoding="utf-8")
        return real_generate()

    monkeypatch.setattr(Keyring, "generate", staticmethod(generate_while_another_process_publishes))
    assert ensure_dev_keyring(path).to_json() == winner.to_json()
    assert path.read_text(encoding="utf-8") == winner.to_json()
    assert list(tmp_path.iterdir()) == [path]
