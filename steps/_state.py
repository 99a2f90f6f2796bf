"""The demo's files in `DEMO_STATE_DIR`: `.state.json`, `invoice.json`, `validate.log`.

`.state.json` carries the ids `setup` created so later steps (and later runs) find them.
Files are written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from steps._env import StepError

STATE_FILE = ".state.json"
INVOICE_FILE = "invoice.json"
VALIDATE_LOG = "validate.log"


@dataclass
class DemoState:
    """Ids of the demo's Stripe objects and tenant, plus the times later steps rely on.

    `frozenTime` is F, the clock time usage is dated against; `periodStart`/`periodEnd`
    the subscription item's first period, the one the renewal invoice bills.
    """

    tenantId: str
    testClockId: str
    stripeApiBase: str
    meterId: str = ""
    productId: str = ""
    priceId: str = ""
    customerId: str = ""
    paymentMethodId: str = ""
    subscriptionId: str = ""
    subscriptionItemId: str = ""
    frozenTime: int = 0
    periodStart: int = 0
    periodEnd: int = 0
    setupComplete: bool = False
    cleanedUp: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in `.state.json`."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DemoState:
        """Parse `.state.json`, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        missing = [n for n in ("tenantId", "testClockId", "stripeApiBase") if n not in data]
        if missing:
            raise StepError(f"{STATE_FILE} lacks {', '.join(missing)}; run `invoke setup --fresh`")
        return cls(**{k: v for k, v in data.items() if k in known})


def json_line(value: Any) -> str:
    """`value` as one line of JSON, keys sorted, a Decimal as its exact number."""
    if isinstance(value, Decimal) and value.is_finite():
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    if isinstance(value, dict):
        items = sorted((str(key), item) for key, item in value.items())
        return "{" + ", ".join(f"{json.dumps(k)}: {json_line(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json_line(item) for item in value) + "]"
    return json.dumps(value, default=str)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to `path` through a temporary file and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary project files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path, what: str, hint: str) -> Any:
    """Parse a JSON file, with a one-line error naming the file when it is absent or bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StepError(f"no {what} at {path}; {hint}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StepError(f"{path} is not valid JSON ({exc}); {hint}") from None


def load_state(state_dir: Path, *, require_complete: bool = True) -> DemoState:
    """The demo state; a missing or unfinished one is a `StepError` telling what to run."""
    data = read_json(state_dir / STATE_FILE, "demo state", "run `invoke setup` first")
    if not isinstance(data, dict):
        raise StepError(
            f"{state_dir / STATE_FILE} is not a JSON object; run `invoke setup --fresh`"
        )
    state = DemoState.from_json(data)
    if require_complete and not state.setupComplete:
        raise StepError(f"setup did not finish (see {state_dir / STATE_FILE}); run `invoke setup`")
    return state


def try_load_state(state_dir: Path) -> DemoState | None:
    """The demo state, or None when there is none (or it is unreadable)."""
    try:
        return load_state(state_dir, require_complete=False)
    except StepError:
        return None


def save_state(state_dir: Path, state: DemoState) -> None:
    """Store the state atomically."""
    write_json_atomic(state_dir / STATE_FILE, state.to_json())


def append_validate_log(state_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to `validate.log` (one line per validation run).

    Decimals are written as exact JSON numbers (`425`, `0.011765`), so every figure of
    the log is a number, whatever its value; keys are sorted.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    line = json_line(record)
    with (state_dir / VALIDATE_LOG).open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
