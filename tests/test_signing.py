"""The one Signer behind cursors, page tokens and download links."""

from __future__ import annotations

import pytest

from hyperscope.signing import BadToken, ExpiredToken, Signer

SECRET = b"k" * 32


def test_a_token_opens_to_its_payload_until_it_expires() -> None:
    now = [1_000.0]
    signer = Signer(SECRET, "cursor", 60, clock=lambda: now[0])
    token = signer.sign({"t": 5, "q": "abc"})
    assert signer.open(token) == {"t": 5, "q": "abc"}
    now[0] += 60
    assert signer.open(token) == {"t": 5, "q": "abc"}
    now[0] += 1
    with pytest.raises(ExpiredToken):
        signer.open(token)


def test_a_token_of_one_purpose_or_secret_is_refused_by_another() -> None:
    cursor = Signer(SECRET, "cursor", 60)
    token = cursor.sign({"f": "x"})
    with pytest.raises(BadToken):
        cursor.for_purpose("link").open(token)
    with pytest.raises(BadToken):
        Signer(b"z" * 32, "cursor", 60).open(token)


@pytest.mark.parametrize("bad", ["", "no-dot", "é.é", "a" * 9000 + "." + "b" * 43, "abc.def", 12])
def test_malformed_text_is_refused_before_any_decoding(bad: object) -> None:
    with pytest.raises(BadToken):
        Signer(SECRET, "cursor", 60).open(bad)  # type: ignore[arg-type]


def test_an_edited_body_is_refused() -> None:
    signer = Signer(SECRET, "link", 60)
    body, signature = signer.sign({"f": "a"}).split(".")
    forged = signer.sign({"f": "b"}).split(".")[0]
    with pytest.raises(BadToken):
        signer.open(f"{forged}.{signature}")
    assert body != forged
