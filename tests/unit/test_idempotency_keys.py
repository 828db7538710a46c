"""Content keys, time buckets and client keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from wabroadcast.domain import idempotency as idem

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_bucket_boundaries() -> None:
    assert idem.time_bucket(T0, 300) == idem.time_bucket(T0 + timedelta(seconds=299), 300)
    assert idem.time_bucket(T0 + timedelta(seconds=300), 300) == idem.time_bucket(T0, 300) + 1


def test_fingerprint_depends_on_every_part() -> None:
    base = idem.content_fingerprint(1, "s", "hello", ["+972500000001", "+972500000002"])
    assert len(base) == 64
    assert base == idem.content_fingerprint(1, "s", "hello", ["+972500000001", "+972500000002"])
    assert base != idem.content_fingerprint(2, "s", "hello", ["+972500000001", "+972500000002"])
    assert base != idem.content_fingerprint(1, "t", "hello", ["+972500000001", "+972500000002"])
    assert base != idem.content_fingerprint(1, "s", "hello!", ["+972500000001", "+972500000002"])
    assert base != idem.content_fingerprint(1, "s", "hello", ["+972500000001"])
    # Parts are length-prefixed: moving text between parts changes the hash.
    assert idem.content_fingerprint(1, "s", "ab", ["c"]) != idem.content_fingerprint(
        1, "s", "a", ["bc"]
    )


@given(st.integers(min_value=0, max_value=10**9))
def test_candidates_cover_the_whole_window(offset: int) -> None:
    at = T0 + timedelta(seconds=offset)
    fingerprint = "ab" * 32
    candidates = idem.candidate_content_keys(fingerprint, at, 300, 600)
    for back in range(0, 601, 7):
        earlier = at - timedelta(seconds=back)
        assert idem.content_key(fingerprint, idem.time_bucket(earlier, 300)) in candidates
    assert idem.content_key(fingerprint, idem.time_bucket(at, 300)) == candidates[0]
    assert len(candidates) <= 3


def test_lock_id_is_a_signed_64_bit_integer() -> None:
    for fingerprint in ("00" * 32, "ff" * 32, "7f" + "ff" * 31):
        value = idem.lock_id(fingerprint)
        assert -(2**63) <= value < 2**63


def test_client_keys() -> None:
    assert idem.unquote_client_key('"abc"') == "abc"
    assert idem.unquote_client_key(" abc ") == "abc"
    assert idem.is_valid_client_key("8e03978e-40d5-43e8-bc93-6894a57f9324")
    assert not idem.is_valid_client_key("")
    assert not idem.is_valid_client_key("a b")
    assert not idem.is_valid_client_key("x" * 256)
    assert idem.request_fingerprint("{}") != idem.request_fingerprint("{ }")
