"""Backfill: load usage history from a file through the same exactly-once path as the API.

- `readers` — JSON lines and CSV files in the ingest shape, one record (or the reason
  it is unreadable) per line, numbers read exactly as the API reads them.
- `checkpoint` — where a run got to, written atomically after each committed batch, so
  a rerun resumes there; the file's identity guards against resuming a changed file.
- `run` — the run itself: batches validated by `ingest.validation`, stored by
  `ingest.ledger` (same keys as the API, so a rerun accepts 0), progress and summary.
"""
