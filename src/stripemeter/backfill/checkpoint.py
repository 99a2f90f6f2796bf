"""The resumable checkpoint of a backfill run: which file, how far, the counts so far.

Written after each batch has committed, atomically (a temporary file in the same
directory, fsynced, then renamed over the old one), so after any crash the checkpoint
names a point every earlier line is stored up to. Exactly-once never depends on it
(the ledger's keys do): a lost or stale checkpoint only costs re-reading lines, which
then count as duplicates. The file's identity (path, size, mtime, a hash of its first
64 KiB) is kept so that a changed file is refused rather than resumed at a wrong line.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stripemeter.errors import BackfillError

KIND = "stripemeter-backfill-checkpoint"
VERSION = 1
HEAD_BYTES = 65536
SUFFIX = ".stripemeter-checkpoint"


@dataclass(frozen=True)
class FileIdentity:
    """What makes the file the same file: its path, size, mtime and first bytes."""

    path: str
    size: int
    mtime_ns: int
    head_sha256: str

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """The identity of the file at `path` now."""
        stat = path.stat()
        with path.open("rb") as stream:
            head = hashlib.sha256(stream.read(HEAD_BYTES)).hexdigest()
        return cls(str(path.resolve()), stat.st_size, stat.st_mtime_ns, head)

    def difference(self, other: FileIdentity) -> str | None:
        """How `other` differs from this identity, in words, or None when the same."""
        if self.path != other.path:
            return f"the checkpoint is for {self.path}, not {other.path}"
        if self.size != other.size:
            return f"its size changed from {self.size} to {other.size} bytes"
        if self.head_sha256 != other.head_sha256:
            return "its first bytes changed"
        if self.mtime_ns != other.mtime_ns:
            return "its modification time changed"
        return None


@dataclass
class Checkpoint:
    """Where a run got to: `records` records (up to `line`) are stored, with these counts.

    `run_id` names the run across resumes; batch request ids derive from it, so a
    resume can recognise the events of a batch that committed just before a crash.
    """

    file: FileIdentity
    format: str
    tenant: str | None
    run_id: str
    batch_size: int
    records: int = 0
    line: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The checkpoint as the JSON document written to disk."""
        body = asdict(self)
        return {"kind": KIND, "version": VERSION, **body}

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Checkpoint:
        """Read a checkpoint document, or `BackfillError` naming the file."""
        try:
            if data.get("kind") != KIND or data.get("version") != VERSION:
                raise ValueError("not a version-1 stripemeter backfill checkpoint")
            body = {k: v for k, v in data.items() if k not in ("kind", "version")}
            body["file"] = FileIdentity(**body["file"])
            return cls(**body)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise BackfillError(
                f"checkpoint {path} cannot be read ({exc}); remove it or pass --restart"
            ) from None


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at `path`, or None when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackfillError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    return Checkpoint.from_json(data, path)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash leaves the old or the new file, whole."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise BackfillError(f"cannot write {path}: {exc.strerror}") from None


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write the checkpoint atomically."""
    write_atomically(path, json.dumps(checkpoint.to_json(), separators=(",", ":")))
