"""Tenant ids: what one is, and its one canonical spelling.

A tenant id is any non-empty printable string of at most 64 characters, without
surrounding whitespace: a UUID as before, or a name such as StripeMeter's
`your-tenant-id`. A UUID-shaped id is written in lower-case canonical form
(`8F2C...` and `8f2c...` are one tenant, as they were when the columns were `uuid`),
every other id is kept exactly as given (`Acme` and `acme` are two tenants).
`STRICT_TENANT_ID_UUID=true` (settings) accepts UUIDs only, as before migration 0013.

`check_tenant_id` is the one place this is decided: ingest, request bodies, query
parameters and the CLI all call it.
"""

from __future__ import annotations

import re
from uuid import UUID

from stripemeter.errors import InputError

MAX_TENANT_CHARS = 64
# Python patterns use \A...\Z with fullmatch (`$` would match before a final newline).
UUID_TEXT = re.compile(
    r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)
# Not control characters; the first and last not whitespace either.
_INNER = r"[^\x00-\x1f\x7f]"
_EDGE = r"[^\x00-\x1f\x7f\s]"
_RULE = f"{_EDGE}(?:{_INNER}{{0,{MAX_TENANT_CHARS - 2}}}{_EDGE})?"
_TENANT_TEXT = re.compile(rf"\A{_RULE}\Z")
# The same rule for the OpenAPI document (ECMA-262 reads `$` as the end of the text).
TENANT_PATTERN = f"^{_RULE}$"

# Checking the same tenant for every event of every batch is measurable; remember them.
_KNOWN: dict[str, tuple[str, bool]] = {}


def check_tenant_id(text: str, *, strict_uuid: bool = False, field: str = "tenantId") -> str:
    """The canonical tenant id for `text`, or `InputError` naming `field` and the rule."""
    known = _KNOWN.get(text)
    if known is None:
        known = _classify(text, field)
        if len(_KNOWN) > 10_000:
            _KNOWN.clear()
        _KNOWN[text] = known
    canonical, is_uuid = known
    if strict_uuid and not is_uuid:
        raise InputError(
            "invalid_value",
            f"{field} must be a UUID (STRICT_TENANT_ID_UUID is on), got {text[:64]!r}",
            field,
        )
    return canonical


def _classify(text: str, field: str) -> tuple[str, bool]:
    if UUID_TEXT.fullmatch(text):
        return str(UUID(text)), True
    if not _TENANT_TEXT.fullmatch(text):
        raise InputError(
            "invalid_value",
            f"{field} must be 1 to {MAX_TENANT_CHARS} printable characters without "
            f"surrounding spaces (a name or a UUID), got {text[:64]!r}",
            field,
        )
    return text, False


def canonical_or_none(text: str) -> str | None:
    """The canonical form of `text` if it is a valid tenant id, else None (no error)."""
    try:
        return check_tenant_id(text)
    except InputError:
        return None
