"""Usage rows the database would not take, kept on local disk until it takes them (15.5).

Once a provider has answered, the call happened and must be accounted. `write_usage`
retries a failed INSERT briefly (the database locked or restarting), then appends the
row here: one JSON line, flushed and fsync'ed, in `LLM_USAGE_SPOOL_DIR` (default
`var/usage-spool/`), one file per process. The rows are written back, in order, by the
next usage write of this process that succeeds (at most once every REPLAY_EVERY
seconds) and by every `/healthz` probe (any process) while the database takes writes.

- A file is claimed by renaming it (atomic on one file system), so two processes never
  replay the same rows; rows a replay could not insert go back into a new file. A claim
  left behind by a process that died mid-replay is taken over after STALE_CLAIM_SECONDS;
  every spooled row carries a `spool_id` (kept in its metadata), so the rows that process
  had already written back are skipped, not written twice.
- A row keeps its own `created_at`, so stats count it on the day it happened.
- While rows wait here, or a write failed in the last DEGRADED_SECONDS, `/healthz`
  reports `usage_writes: degraded` and /v1 refuses new calls with a 503 before calling
  the provider (gateway/views.py).
"""

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError

logger = logging.getLogger(__name__)

REPLAY_EVERY = 5.0
DEGRADED_SECONDS = 10.0
STALE_CLAIM_SECONDS = 600.0

_lock = threading.Lock()
_state = {"last_failure": 0.0, "last_replay": 0.0, "pending": None}


def spool_dir() -> Path:
    configured = getattr(settings, "LLM_USAGE_SPOOL_DIR", None)
    return Path(configured) if configured else Path(settings.BASE_DIR) / "var" / "usage-spool"


def _own_file() -> Path:
    return spool_dir() / f"usage-{os.getpid()}.jsonl"


def spool_row(values: dict) -> None:
    """Append one row (column → JSON-able value) durably to this process's spool file."""
    directory = spool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    values = {**values, "metadata": {**(values.get("metadata") or {}), "spool_id": _new_id()}}
    line = json.dumps(values, separators=(",", ":"), default=str) + "\n"
    with _lock:
        with open(_own_file(), "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        _state["pending"] = True
    logger.error("usage row spooled to %s (the database did not take it)", directory)


def note_failure() -> None:
    _state["last_failure"] = time.monotonic()


def note_success() -> None:
    _state["last_failure"] = 0.0


def failing_now() -> bool:
    """A usage write failed in the last DEGRADED_SECONDS (and none succeeded since)."""
    failure = _state["last_failure"]
    return bool(failure) and time.monotonic() - failure < DEGRADED_SECONDS


def pending_files() -> list[Path]:
    """Spooled files waiting for a replay, and claims abandoned by a replay that died."""
    directory = spool_dir()
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".jsonl" or _stale_claim(p))


def _stale_claim(path: Path) -> bool:
    if ".claimed-" not in path.name:
        return False
    try:  # the rename that claimed it set its ctime
        return time.time() - path.stat().st_ctime > STALE_CLAIM_SECONDS
    except FileNotFoundError:
        return False


def _new_id() -> str:
    return uuid.uuid4().hex


def is_degraded() -> bool:
    """A usage write failed lately, or rows wait in the spool."""
    return failing_now() or has_pending()


def has_pending() -> bool:
    pending = _state["pending"]
    if pending is None:  # not looked yet in this process
        pending = _state["pending"] = bool(pending_files())
    return pending


def maybe_replay() -> None:
    """After a successful write: replay spooled rows, at most every REPLAY_EVERY s."""
    if not has_pending():
        return
    now = time.monotonic()
    if now - _state["last_replay"] < REPLAY_EVERY:
        return
    _state["last_replay"] = now
    try:
        replay()
    except Exception:  # a replay problem must never fail the call that triggered it
        logger.warning("usage spool replay failed", exc_info=True)


def _set_aside(line: str) -> None:
    rejected = spool_dir() / f"rejected-{os.getpid()}.jsonl.rejected"
    with open(rejected, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    logger.error("usage spool: a row the database refuses for good set aside in %s", rejected)


def replay() -> int:
    """Insert every spooled row; returns how many went in."""
    inserted = 0
    for path in pending_files():
        taken_over = ".claimed-" in path.name
        stem = path.name.split(".", 1)[0]
        claimed = path.with_name(f"{stem}.claimed-{_new_id()}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue  # another process claimed it
        lines = claimed.read_text(encoding="utf-8").splitlines()
        done, rest = _replay_lines(lines, path, skip_stored=taken_over)
        inserted += done
        if rest:
            back = spool_dir() / f"usage-{os.getpid()}-{_new_id()}.jsonl"
            back.write_text("\n".join(rest) + "\n", encoding="utf-8")
        claimed.unlink()
        if rest:
            break
    _state["pending"] = bool(pending_files())
    if inserted:
        logger.info("usage spool: %d row(s) written back to the database", inserted)
    return inserted


def _replay_lines(lines: list[str], path: Path, *, skip_stored: bool) -> tuple[int, list[str]]:
    """(rows inserted, the lines left for later when the database refused again).

    `skip_stored`: the file was taken over from a replay that died; rows it had already
    written back (found by their spool_id) are skipped.
    """
    from .writes import insert_spooled_row, spooled_row_stored

    inserted = 0
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
            if skip_stored and spooled_row_stored(values):
                continue
            insert_spooled_row(values)
        except json.JSONDecodeError:
            logger.error("usage spool: dropping an unreadable line in %s", path.name)
            continue
        except IntegrityError:
            # This row can never go in (its tenant was deleted meanwhile): set aside for
            # an operator, not retried, so that it cannot hold back the rows behind it.
            _set_aside(line)
            continue
        except Exception as exc:  # the database refused again: keep the rest for later
            logger.warning("usage spool: replay stopped (%s)", type(exc).__name__)
            return inserted, lines[i:]
        inserted += 1
    return inserted, []
