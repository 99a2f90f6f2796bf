"""Control endpoints for tests, outside `/v1` and without auth.

- `GET /_emulator/health` -> `{"status": "ok"}`
- `POST /_emulator/reset` forgets all objects, idempotency keys and faults
- `POST /_emulator/faults` adds a rule (see faults.py); `GET` lists, `DELETE` clears
- `GET /_emulator/state` dumps every object keyed by plural type
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from stripe_emulator import billing
from stripe_emulator.errors import StripeError
from stripe_emulator.faults import parse_fault

if TYPE_CHECKING:
    from stripe_emulator.app import Emulator


def handle(emu: Emulator, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """Answer one control request with (status, JSON-able body)."""
    route = (method, path)
    if route == ("GET", "/_emulator/health"):
        return 200, {"status": "ok"}
    if route == ("POST", "/_emulator/reset"):
        emu.store.reset()
        emu.idempotency.reset()
        emu.faults.clear()
        return 200, {"status": "ok"}
    if route == ("GET", "/_emulator/state"):
        billing.tick(emu.store)
        return 200, emu.store.dump()
    if path == "/_emulator/faults":
        if method == "GET":
            return 200, {"faults": emu.faults.describe()}
        if method == "DELETE":
            emu.faults.clear()
            return 200, {"faults": []}
        if method == "POST":
            try:
                data = orjson.loads(body or b"null")
            except orjson.JSONDecodeError:
                raise StripeError(400, "Fault rule must be a JSON object", param="body") from None
            emu.faults.add(parse_fault(data))
            return 200, {"faults": emu.faults.describe()}
    raise StripeError(
        404,
        f"Unrecognized request URL ({method}: {path}). The Stripe emulator has no such "
        "control endpoint.",
    )
