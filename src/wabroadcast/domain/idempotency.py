"""Keys that stop one intention from becoming two broadcasts.

A double click, a page refresh or a client retry must not send the same message
twice. Without a client key we derive one from the content and a 5-minute time
bucket (the seed's rule); because a request can land just after a bucket
boundary, lookups also consider the previous buckets that overlap the
10-minute window. With an ``Idempotency-Key`` header the client's key governs
(IETF httpapi draft / Stripe semantics) and the request fingerprint detects a
key reused for a different body.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime

IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
# The header as sent: the key bare, or quoted as an RFC 8941 string.
IDEMPOTENCY_HEADER_PATTERN = r'^(?:"[\x21\x23-\x7e]{1,255}"|[\x21-\x7e]{1,255})$'


def time_bucket(at: datetime, bucket_seconds: int) -> int:
    """The index of the ``bucket_seconds``-long bucket that ``at`` falls in."""
    return int(at.timestamp()) // bucket_seconds


def _digest(parts: Iterable[str]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        # Length-prefix every part so that ("ab", "c") and ("a", "bc") differ.
        hasher.update(len(encoded).to_bytes(8, "big"))
        hasher.update(encoded)
    return hasher.hexdigest()


def content_fingerprint(
    tenant_id: int, session_id: str, message: str, sorted_phones: Iterable[str]
) -> str:
    """SHA-256 of what makes two broadcasts "the same", without any time component."""
    return _digest(["content", str(tenant_id), session_id, message, *sorted_phones])


def message_fingerprint(tenant_id: int, session_id: str, message: str) -> str:
    """SHA-256 of a tenant's message on a session: what concurrent creates serialize on."""
    return _digest(["message", str(tenant_id), session_id, message])


def content_key(fingerprint: str, bucket: int) -> str:
    """The 64-hex ``idempotency_key`` stored on a broadcast: fingerprint plus time bucket."""
    return _digest(["bucket", fingerprint, str(bucket)])


def candidate_content_keys(
    fingerprint: str, at: datetime, bucket_seconds: int, window_seconds: int
) -> list[str]:
    """Keys of every bucket that overlaps ``[at - window, at]``, newest first.

    A broadcast found under one of them still has to be checked against the
    window by its creation time; the buckets only narrow the indexed lookup.
    """
    newest = time_bucket(at, bucket_seconds)
    oldest = int(at.timestamp() - window_seconds) // bucket_seconds
    return [content_key(fingerprint, b) for b in range(newest, oldest - 1, -1)]


def lock_id(fingerprint: str) -> int:
    """A signed 64-bit number derived from a fingerprint, for a transaction-scoped lock."""
    return int.from_bytes(bytes.fromhex(fingerprint[:16]), "big", signed=True)


def request_fingerprint(canonical_body: str) -> str:
    """SHA-256 of a canonical request body, to spot a key reused with another body."""
    return _digest(["request", canonical_body])


def is_valid_client_key(key: str) -> bool:
    """A client key is 1-255 visible ASCII characters (quotes of an RFC 8941 string removed)."""
    return bool(IDEMPOTENCY_KEY_PATTERN.match(key))


def unquote_client_key(raw: str) -> str:
    """Accept both the draft's quoted sf-string form and the bare form clients send."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    return raw
