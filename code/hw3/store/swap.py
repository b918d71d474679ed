"""How an entry's files reach the cache: written beside it, swapped in whole, under a lock; never lost.

* An entry is written to a hidden temporary folder beside it (`.<name>.XXXXXXXX`), then swapped in:
  the old entry is renamed to `.<name>.old`, the new one to `<name>`, and `.old` removed. An
  interrupted swap leaves the old entry or the new one complete, never half of either, and
  `restore` puts back the newest complete one instead of recomputing it.
* Writers of one prefix folder take an exclusive `flock` on that folder for the swap (milliseconds),
  so two writers of the same entry never rename into each other's way ("Directory not empty").
  A reader that finds an entry missing or damaged looks again under a shared lock, that is, once
  any swap in progress is done, before it says so (`hw3.store.cached.Experiment.status`).
* A result that cannot be written (a full disk) is written to a rescue folder outside the cache
  instead, as a complete entry that can be moved into place (`rescue`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib

from hw3.store import fingerprint

FINGERPRINT_EXEMPT = True  # where and how results are kept is not what they are (see hw3.store.fingerprint.closure)
OUTPUT, META = "output.joblib", "meta.json"


@contextlib.contextmanager
def lock(parent: Path, shared: bool = False) -> Iterator[None]:
    """flock on the prefix folder itself (no lock file left in the cache); released on exit or death."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


_TEMPORARY = re.compile(r"old|[a-z0-9_]{8}")  # `.old`, or the 8 characters tempfile.mkdtemp adds


def old_of(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.old")


def write_files(target: Path, output: Any, meta: dict) -> None:
    """output.joblib, then meta.json with the sha256 of output.joblib's bytes (meta.json last: it marks completion)."""
    joblib.dump(output, target / OUTPUT)
    meta["output_sha256"] = fingerprint.file_sha256(target / OUTPUT)
    (target / META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


def write_entry(folder: Path, output: Any, meta: dict) -> None:
    """Write the entry beside `folder`, then swap it in under the prefix's lock. OSError when it cannot be written."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write_files(tmp, output, meta)
        old = old_of(folder)
        with lock(folder.parent):
            shutil.rmtree(old, ignore_errors=True)
            if folder.exists():
                folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def rescue(name: str, output: Any, meta: dict) -> Path | None:
    """Write a result that the cache could not take to `$TMPDIR/hw3-unsaved/<name>-<time>/`; None if that fails too."""
    target = Path(tempfile.gettempdir()) / "hw3-unsaved" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        target.mkdir(parents=True, exist_ok=False)
        write_files(target, output, meta)
        return target
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        return None


def _complete(candidate: Path, key: str | None) -> bool:
    """A leftover folder holding a whole entry (of `key`, unless None): meta.json (written last) parses,
    and output.joblib matches it."""
    try:
        meta = json.loads((candidate / META).read_text())
        if not isinstance(meta, dict) or key not in (None, meta.get("key")) or not isinstance(meta.get("output_sha256"), str):
            return False
        return fingerprint.file_sha256(candidate / OUTPUT) == meta["output_sha256"]
    except (OSError, ValueError, RecursionError):
        return False


def leftovers(folder: Path) -> list[Path]:
    """What an interrupted write left beside a missing `folder`: `.<name>.old` and temporary folders."""
    if not folder.parent.is_dir() or folder.exists():
        return []
    prefix = f".{folder.name}."
    return sorted(p for p in folder.parent.iterdir()
                  if p.name.startswith(prefix) and _TEMPORARY.fullmatch(p.name[len(prefix):]) and p.is_dir() and not p.is_symlink())


def restore(folder: Path, key: str | None = None) -> Path | None:
    """Put back the entry an interrupted swap took away; the folder it came from, or None.

    The newest complete temporary folder wins (the swap was installing it: it is the newer result),
    else `.old` (the entry as it was). Nothing is deleted: `python -m hw3 gc` lists what remains.
    """
    if folder.exists() or not folder.parent.is_dir():
        return None
    with lock(folder.parent):
        if folder.exists():
            return None
        candidates = [p for p in leftovers(folder) if _complete(p, key)]
        fresh = sorted((p for p in candidates if p != old_of(folder)), key=lambda p: p.stat().st_mtime_ns)
        chosen = fresh[-1] if fresh else (old_of(folder) if old_of(folder) in candidates else None)
        if chosen is not None:
            chosen.rename(folder)
        return chosen


def check_writable(parent: Path, need_bytes: int) -> None:
    """OSError unless a file can be created in `parent` and `need_bytes` are free there."""
    parent.mkdir(parents=True, exist_ok=True)
    os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=parent))
    free = shutil.disk_usage(parent).free
    if free < need_bytes:
        raise OSError(28, f"only {free / 2**20:.0f} MiB free, and a result needs up to {need_bytes / 2**20:.0f} MiB "
                          "(with its rescue copy)")
