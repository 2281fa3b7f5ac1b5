"""QR codes (亮码) without I/O: signing and verifying, parsing, the TTL cache, label layout."""

from __future__ import annotations

import pytest

from services.identity.codes import (
    ALPHABET,
    CODE_LENGTH,
    CodeSigner,
    InvalidCode,
    TtlCache,
    code_from_request,
    code_url,
    ellipsize,
    fit_font_size,
    label_layout,
    svg_font_size,
)

SECRET = bytes(range(32))
SIGNER = CodeSigner.from_secret(SECRET)


def test_a_code_verifies_and_is_short_and_url_safe() -> None:
    code = SIGNER.issue()
    assert SIGNER.verify(code) == code
    assert len(code) == CODE_LENGTH and 16 <= CODE_LENGTH <= 22
    assert set(code) <= set(ALPHABET) and not set(code) & set("ILOU")
    assert code_url("https://minyi.example/", code) == f"https://minyi.example/q/{code}"


def test_a_code_typed_back_from_paper_still_verifies() -> None:
    code = SIGNER.issue(bytes(6))
    typed = code.lower().replace("1", "l").replace("0", "o")
    assert SIGNER.verify(f"  {typed} ") == code


@pytest.mark.parametrize("position", range(CODE_LENGTH))
def test_changing_any_one_character_breaks_the_code(position: int) -> None:
    code = SIGNER.issue(b"\x10\x20\x30\x40\x50\x60")
    for replacement in ALPHABET:
        if replacement == code[position]:
            continue
        forged = code[:position] + replacement + code[position + 1:]
        with pytest.raises(InvalidCode):
            SIGNER.verify(forged)


def test_a_code_signed_with_another_secret_does_not_verify() -> None:
    other = CodeSigner.from_secret(b"\xff" * 32)
    with pytest.raises(InvalidCode):
        SIGNER.verify(other.issue())
    with pytest.raises(InvalidCode):
        other.verify(SIGNER.issue())


@pytest.mark.parametrize("text", ["", "1", "1ABC", "1" * (CODE_LENGTH - 1), "1" * (CODE_LENGTH + 1),
                                  "U" * CODE_LENGTH, "1" + "*" * (CODE_LENGTH - 1), "1" + "中" * (CODE_LENGTH - 1),
                                  "../../etc/passwd", "1" * 10_000])
def test_malformed_codes_are_refused(text: str) -> None:
    with pytest.raises(InvalidCode):
        SIGNER.verify(text)


def test_only_the_canonical_spelling_of_the_padding_verifies() -> None:
    code = SIGNER.issue(b"\x01\x02\x03\x04\x05\x06")
    last = ALPHABET.index(code[-1])
    # The last symbol carries one data bit and four zero bits; setting a pad bit must not verify.
    with pytest.raises(InvalidCode):
        SIGNER.verify(code[:-1] + ALPHABET[last | 1])


def test_codes_are_unique_across_many_issues() -> None:
    codes = {SIGNER.issue() for _ in range(20_000)}
    assert len(codes) == 20_000


def test_a_code_carries_nothing_but_randomness_and_its_tag() -> None:
    # Issuing takes no argument about who the code is for: nothing personal can end up in it.
    with pytest.raises(TypeError):
        SIGNER.issue("DEP-1", "王建国")  # type: ignore[call-arg]
    code = SIGNER.issue()
    assert code.isascii() and "DEP" not in code


def test_the_key_id_selects_the_secret_so_a_rotation_keeps_old_codes() -> None:
    old = SIGNER.issue()
    rotated = CodeSigner({"1": SECRET, "2": b"\x07" * 32}, current_key_id="2")
    new = rotated.issue()
    assert new[0] == "2" and rotated.verify(new) == new and rotated.verify(old) == old
    with pytest.raises(InvalidCode):
        SIGNER.verify(new)


def test_short_or_misnamed_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        CodeSigner.from_secret(b"short")
    with pytest.raises(ValueError, match="key id"):
        CodeSigner({"I": SECRET}, current_key_id="I")


@pytest.mark.parametrize(("body", "code"), [
    (b'{"code": "1ABC"}', "1ABC"),
    (b'"1ABC"', "1ABC"),
    (b"1ABC\n", "1ABC"),
    (b"123456", "123456"),
    (b'{"kode": "1ABC"}', None),
    (b'{"code": 5}', None),
    (b"{not json", None),
    (b"", None),
    (b"\xff\xfe", None),
])
def test_nats_requests_name_their_code(body: bytes, code: str | None) -> None:
    assert code_from_request(body) == code


def test_the_cache_expires_evicts_and_refuses_stale_writes() -> None:
    now = [0.0]
    cache: TtlCache[str, str | None] = TtlCache(ttl_seconds=30, max_entries=2, clock=lambda: now[0])
    cache.put("a", "A")
    cache.put("gone", None)
    assert cache.get("a") == (True, "A") and cache.get("gone") == (True, None)
    cache.put("b", "B")  # "a" was used least recently
    assert cache.get("a") == (False, None) and len(cache) == 2
    now[0] = 31
    assert cache.get("gone") == (False, None) and cache.get("b") == (False, None)

    generation = cache.generation
    cache.discard("c")  # an invalidation while a lookup of "c" was under way
    cache.put("c", "stale", generation=generation)
    assert cache.get("c") == (False, None)
    cache.put("c", "fresh", generation=cache.generation)
    assert cache.get("c") == (True, "fresh")


def test_label_layout_keeps_the_code_whole_and_the_name_below() -> None:
    layout = label_layout(41)
    assert layout.width == 600 and layout.scale == 14
    assert layout.qr_offset * 2 + 41 * 14 == 600
    assert layout.label_top >= layout.qr_offset + 41 * 14 and layout.height > layout.label_top
    with pytest.raises(ValueError):
        label_layout(601)


def test_names_shrink_to_fit_and_are_cut_only_when_even_the_smallest_size_is_too_wide() -> None:
    def measure(size: int) -> float:
        return size * 10.0

    assert fit_font_size(measure, 540, largest=56, smallest=20) == 54
    assert fit_font_size(measure, 100, largest=56, smallest=20) == 20
    assert fit_font_size(measure, 10_000, largest=56, smallest=20) == 56
    assert ellipsize("王建国", lambda t: len(t) <= 5) == "王建国"
    assert ellipsize("阜宁县阜城街道人大代表联络站", lambda t: len(t) <= 5) == "阜宁县阜…"
    assert svg_font_size("王建国", 540, largest=56, smallest=20) == 56
    assert svg_font_size("很" * 20, 540, largest=56, smallest=20) == 27
    assert svg_font_size("很" * 200, 540, largest=56, smallest=20) == 20
