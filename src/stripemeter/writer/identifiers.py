"""Names for what the writer sends to Stripe.

A meter event's `identifier` names one outbox row (see `stripemeter.writer.outbox`):
(tenant, metric, meter event name, customer, hour bucket, outbox sequence number). The
row is committed before the first send, so every re-send after a crash, a timeout or a
stored-then-500 carries the same identifier and Stripe refuses the duplicate instead of
counting it twice; an identifier is never reused for another value, because a new value
is a new row with a new sequence number. (An earlier scheme derived the identifier from
the bucket's cumulative total; after a lost record and more usage in the same hour the
retry then carried a new identifier and the whole delta again: double billing.)
"""

from __future__ import annotations

import hashlib
from datetime import datetime

IDENTIFIER_PREFIX = "smp_"
IDEMPOTENCY_PREFIX = "smk_"
_DIGEST_CHARS = 40
# Stripe accepts meter event identifiers of up to 100 characters.
MAX_IDENTIFIER_CHARS = 100


def _digest(*parts: str) -> str:
    joined = "\x1f".join(parts).encode("utf-8")
    return hashlib.sha256(joined).hexdigest()[:_DIGEST_CHARS]


def outbox_identifier(
    tenant_id: str,
    metric: str,
    event_name: str,
    customer_ref: str,
    hour_start: datetime,
    seq: int,
) -> str:
    """The meter event identifier of outbox row `seq` (at most 100 characters).

    The sequence number appears in clear so an operator can find the row from what
    Stripe shows; the digest makes identifiers of different databases or series differ.
    """
    digest = _digest(
        str(tenant_id), metric, event_name, customer_ref, str(int(hour_start.timestamp())), str(seq)
    )
    identifier = f"{IDENTIFIER_PREFIX}{seq}_{digest}"
    assert len(identifier) <= MAX_IDENTIFIER_CHARS
    return identifier


def idempotency_key(identifier: str, timestamp: int, value: int, attempt_tag: str = "") -> str:
    """The Idempotency-Key of the meter-event POST carrying `identifier`.

    It covers the request's parameters, so the same key never meets different
    parameters (which Stripe refuses), and `attempt_tag` gives a fresh key after a
    5xx whose answer Stripe may have stored and would replay forever.
    """
    return IDEMPOTENCY_PREFIX + _digest(identifier, str(timestamp), str(value), attempt_tag)


def batch_idempotency_key(rows: list[tuple[str, int, int, int]], attempt_tag: str = "") -> str:
    """The Idempotency-Key of a v2 stream request carrying `rows`.

    Each row is (identifier, timestamp, value, recorded attempts): the key covers the
    whole body, so the same key never meets another batch, and changes with any row's
    attempt count and with `attempt_tag` for the reason `idempotency_key` gives.
    """
    parts = [f"{i}:{ts}:{v}:a{n}" for i, ts, v, n in rows]
    return IDEMPOTENCY_PREFIX + _digest(*parts, attempt_tag)
