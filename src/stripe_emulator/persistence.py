"""The emulator's state on disk: one SQLite file, one transaction per request.

`stripe-emulator --state-dir DIR` keeps everything a restart must not lose in
`DIR/emulator.sqlite3` (WAL journal, `synchronous=FULL`): every stored object (all
types, internal `_` keys included, list order kept), the sequence counter and the
stored Idempotency-Key responses. The app commits after each request and before
answering it, so a kill -9 loses at most the request in flight and never an
acknowledged one; SQLite's journal keeps the file consistent whatever the moment.

Not stored, on purpose: injected faults (a test-only, per-process tool) and keys still
executing (their request dies with the process). Meter-event `identifiers` and `usage`
are indexes over the `meter_events` objects, rebuilt from them on load.

Only what changed is written. The store notes every object it hands out or inserts
(see `Store`); at commit each noted object's JSON is compared with what was last
committed (a hash), and only differing ones are encoded and written. An object nested
inside another stored object (a subscription's items, an item's price) is written as a
reference to its own row, so the aliasing survives a restart exactly.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from stripe_emulator.idempotency import Stored

if TYPE_CHECKING:
    from stripe_emulator.idempotency import IdempotencyStore
    from stripe_emulator.store import Obj, Store

FILENAME = "emulator.sqlite3"
SCHEMA_VERSION = 1
_REF = "\x00ref"  # {_REF: [type, key]}: another stored object
_TUPLE = "\x00tuple"  # {_TUPLE: [...]}: a tuple (JSON has only lists)
_ESC = "\x00"  # user keys starting with it get one more, so markers stay unambiguous
_RAW = orjson.OPT_NON_STR_KEYS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    json TEXT NOT NULL,
    UNIQUE (type, key)
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    stored_at REAL NOT NULL
);
"""


class StateError(Exception):
    """The state directory or file cannot be used; the message is one line for the CLI."""


def state_file(state_dir: Path) -> Path:
    """Where the state of an emulator started with `--state-dir state_dir` lives."""
    return state_dir / FILENAME


def delete_state(state_dir: Path) -> bool:
    """Remove the stored state (file and journal); True when there was something."""
    found = False
    base = state_file(state_dir)
    for path in (base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm")):
        if path.exists():
            path.unlink()
            found = True
    return found


class _Ref:
    """A reference read from disk, resolved once every object is loaded."""

    __slots__ = ("loc",)

    def __init__(self, loc: tuple[str, str]) -> None:
        self.loc = loc


def _encode(
    value: Any, top: Obj, where: Callable[[Obj], tuple[str, str] | None], refs: list[Obj]
) -> Any:
    if isinstance(value, dict):
        if value is not top:
            loc = where(value)
            if loc is not None:
                refs.append(value)
                return {_REF: list(loc)}
        return {
            (_ESC + k if k.startswith(_ESC) else k): _encode(v, top, where, refs)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_encode(v, top, where, refs) for v in value]
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, top, where, refs) for v in value]}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            if _REF in value:
                type_, key = value[_REF]
                return _Ref((type_, key))
            if _TUPLE in value:
                return tuple(_decode(v) for v in value[_TUPLE])
        return {(k[1:] if k.startswith(_ESC) else k): _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _resolve(value: Any, objects: dict[tuple[str, str], Obj]) -> Any:
    if isinstance(value, _Ref):
        target = objects.get(value.loc)
        if target is None:
            raise ValueError(f"reference to missing object {value.loc[0]}/{value.loc[1]}")
        return target
    if isinstance(value, dict):
        for k, v in value.items():
            value[k] = _resolve(v, objects)
        return value
    if isinstance(value, list):
        for n, v in enumerate(value):
            value[n] = _resolve(v, objects)
        return value
    if isinstance(value, tuple):
        return tuple(_resolve(v, objects) for v in value)
    return value


class StateFile:
    """An open state file bound to one store and one idempotency store."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self.idempotency: IdempotencyStore | None = None
        self._hashes: dict[tuple[str, str], int] = {}
        self._saved_seq = 0

    def _broken(self, exc: Exception) -> StateError:
        return StateError(
            f"the emulator state file {self.path} is unreadable or corrupt ({exc}); "
            "run `invoke emulator-reset` (or start with --reset) to start empty"
        )

    def load(self, store: Store, idempotency: IdempotencyStore) -> None:
        """Fill an empty store and idempotency store from disk, and attach to both."""
        try:
            self._load(store, idempotency)
        except (sqlite3.Error, orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
            raise self._broken(exc) from exc
        self.idempotency = idempotency
        store.backing = self

    def _load(self, store: Store, idempotency: IdempotencyStore) -> None:
        meta = dict(self.conn.execute("SELECT name, value FROM meta").fetchall())
        version = int(meta.get("schema", SCHEMA_VERSION))
        if version != SCHEMA_VERSION:
            raise ValueError(f"schema version {version}, this emulator reads {SCHEMA_VERSION}")
        rows = self.conn.execute("SELECT type, key, json FROM objects ORDER BY id").fetchall()
        loaded: dict[tuple[str, str], Obj] = {}
        for type_, key, text in rows:
            obj = _decode(orjson.loads(text))
            if not isinstance(obj, dict):
                raise ValueError(f"object {type_}/{key} is not a JSON object")
            loaded[(type_, key)] = obj
        for obj in loaded.values():
            _resolve(obj, loaded)
        for (type_, key), obj in loaded.items():
            store.restore(type_, key, obj)
            self._hashes[(type_, key)] = hash(orjson.dumps(obj, option=_RAW))
        store.restore_seq(int(meta.get("seq", 0)))
        self._saved_seq = int(meta.get("seq", 0))
        store.take_touched()
        # Clocks caught mid-advance: their real-time delay ran against another process's
        # monotonic clock; finish it at most one delay from now.
        latest = time.monotonic() + store.advance_delay_s
        for clock in store.by_type["test_clocks"].values():
            if "_ready_at" in clock:
                clock["_ready_at"] = min(float(clock["_ready_at"]), latest)
        store.take_touched()
        keys = self.conn.execute(
            "SELECT key, fingerprint, status, body, stored_at FROM idempotency ORDER BY rowid"
        ).fetchall()
        for key, fp, status, body, stored_at in keys:
            idempotency.done[key] = Stored(bytes(fp), int(status), bytes(body), float(stored_at))
        idempotency.take_changes()

    def commit(self, store: Store) -> None:
        """Write what changed since the last commit in one durable transaction."""
        touched = store.take_touched()
        removed = store.take_removed()
        where = store.location
        writes: dict[tuple[str, str], tuple[int, int, bytes]] = {}
        seen: set[int] = set()
        stack = touched
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            loc = where(obj)
            if loc is None:  # removed meanwhile, or not a stored object
                continue
            digest = hash(orjson.dumps(obj, option=_RAW))
            if self._hashes.get(loc) == digest:
                continue
            refs: list[Obj] = []
            text = orjson.dumps(_encode(obj, obj, where, refs))
            writes[loc] = (digest, int(obj.get("_seq", 0)), text)
            stack.extend(refs)
        new_keys, dropped_keys = (
            self.idempotency.take_changes() if self.idempotency is not None else ([], [])
        )
        seq = store.seq
        if not (writes or removed or new_keys or dropped_keys or seq != self._saved_seq):
            return
        done = self.idempotency.done if self.idempotency is not None else {}
        with self.conn:  # one transaction; sqlite3 commits on exit, rolls back on error
            for type_, key in removed:
                self.conn.execute("DELETE FROM objects WHERE type = ? AND key = ?", (type_, key))
            self.conn.executemany(
                "INSERT INTO objects (type, key, seq, json) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (type, key) DO UPDATE SET seq = excluded.seq, json = excluded.json",
                # New rows get ascending ids in insertion order: that is the list order.
                [
                    (t, k, s, text.decode())
                    for (t, k), (_, s, text) in sorted(writes.items(), key=lambda w: w[1][1])
                ],
            )
            self.conn.executemany(
                "DELETE FROM idempotency WHERE key = ?", [(k,) for k in dropped_keys]
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO idempotency (key, fingerprint, status, body, stored_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (k, done[k].fingerprint, done[k].status, done[k].body, done[k].stored_at)
                    for k in new_keys
                    if k in done
                ],
            )
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (str(seq),))
        for loc in removed:
            self._hashes.pop(loc, None)
        for loc, (digest, _, _) in writes.items():
            self._hashes[loc] = digest
        self._saved_seq = seq

    def clear(self) -> None:
        """Forget everything on disk (POST /_emulator/reset)."""
        with self.conn:
            self.conn.execute("DELETE FROM objects")
            self.conn.execute("DELETE FROM idempotency")
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('seq', '0')")
        self._hashes.clear()
        self._saved_seq = 0
        if self.idempotency is not None:
            self.idempotency.take_changes()

    def close(self) -> None:
        """Close the connection (the state stays on disk)."""
        self.conn.close()


def open_state(state_dir: Path, *, reset: bool = False) -> StateFile:
    """Open (creating if needed) the state in `state_dir`; `reset` deletes it first."""
    path = state_file(state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        if reset:
            delete_state(state_dir)
        probe = state_dir / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StateError(
            f"the emulator state directory {state_dir} is not writable ({exc.strerror})"
        ) from exc
    try:
        # The app uses it from its event-loop thread only, which may not be the opener.
        conn = sqlite3.connect(path, timeout=0, isolation_level="DEFERRED", check_same_thread=False)
        # One emulator per state file: the exclusive lock is taken on the first read
        # below and released by the OS if the process dies.
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        with conn:
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise StateError(
                f"the emulator state file {path} is in use by another stripe-emulator"
            ) from exc
        raise StateError(
            f"the emulator state file {path} is unreadable or corrupt ({exc}); "
            "run `invoke emulator-reset` (or start with --reset) to start empty"
        ) from exc
    except sqlite3.DatabaseError as exc:
        raise StateError(
            f"the emulator state file {path} is unreadable or corrupt ({exc}); "
            "run `invoke emulator-reset` (or start with --reset) to start empty"
        ) from exc
    return StateFile(path, conn)
