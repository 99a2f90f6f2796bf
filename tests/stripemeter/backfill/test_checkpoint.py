"""The backfill checkpoint: atomic writes, file identity, unreadable checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from stripemeter.backfill import checkpoint
from stripemeter.backfill.checkpoint import Checkpoint, FileIdentity
from stripemeter.errors import BackfillError


def test_a_checkpoint_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    data = tmp_path / "f.jsonl"
    data.write_text("{}\n")
    saved = Checkpoint(FileIdentity.of(data), "jsonl", None, "run1", 100, records=7, line=9)
    saved.rejects.append({"line": 3, "code": "invalid_json", "field": None, "message": "x"})
    path = tmp_path / "f.jsonl.stripemeter-checkpoint"
    checkpoint.save(path, saved)
    assert checkpoint.load(path) == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == [data.name, path.name]


def test_no_checkpoint_is_none_and_a_garbled_one_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    assert checkpoint.load(path) is None
    path.write_text('{"kind": "something else"}')
    with pytest.raises(BackfillError, match=f"^checkpoint {path} cannot be read .*--restart$"):
        checkpoint.load(path)
    path.write_text("{not json")
    with pytest.raises(BackfillError, match="cannot be read"):
        checkpoint.load(path)


def test_a_file_changed_in_place_is_told_apart_even_at_the_same_size(tmp_path: Path) -> None:
    data = tmp_path / "f.jsonl"
    data.write_text('{"a": 1}\n')
    before = FileIdentity.of(data)
    assert before.difference(FileIdentity.of(data)) is None
    data.write_text('{"a": 2}\n')
    assert before.difference(FileIdentity.of(data)) == "its first bytes changed"
