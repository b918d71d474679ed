"""The source each module of a watched package was compiled from, kept as it was read.

`hw3/__init__.py` calls `watch("hw3")` before any other module of the package is imported. From
then on every module of `hw3` is compiled from the bytes this loader read (not from a `.pyc`, which
could be older or newer than the file), and those bytes are kept. The fingerprint is taken from the
files on disk, so the store compares the two around a run (`changed_on_disk`): a result is written
only when the code that computed it is the code fingerprinted. A file edited after a worker imported
it (a branch switch during `make results`), before or during its run, is refused.

A module imported before its package called `watch` (the package's `__init__` itself, and this
module), or of a package that never calls it, is snapshotted from disk the first time it is asked
for: for those the check covers edits from that moment on only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading

FINGERPRINT_EXEMPT = True  # how sources are read, not what they compute

_SOURCES: dict[str, bytes] = {}  # module name → the bytes it was compiled from
_WATCHED: set[str] = set()
_LOCK = threading.Lock()


class _SnapshotLoader(importlib.machinery.SourceFileLoader):
    """Compiles from the bytes it read, and keeps them (no bytecode cache: it might not match them)."""

    def get_code(self, fullname):
        source = self.get_data(self.path)
        with _LOCK:
            _SOURCES[fullname] = source
        return self.source_to_code(source, self.path)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.partition(".")[0] not in _WATCHED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return None  # not a plain source file: leave it to the usual finders
        spec.loader = _SnapshotLoader(fullname, spec.origin)
        return spec


_FINDER = _Finder()


def watch(package: str) -> None:
    """Compile every module of `package` imported from now on through the snapshotting loader."""
    _WATCHED.add(package)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def imported_source(module: str) -> bytes | None:
    """The bytes `module` was compiled from (for a module imported before `watch`: its file when first asked)."""
    with _LOCK:
        if module not in _SOURCES:
            path = getattr(sys.modules.get(module), "__file__", None)
            source = _read(path) if path else None
            if source is None:
                return None
            _SOURCES[module] = source
        return _SOURCES[module]


def changed_on_disk(modules) -> list[str]:
    """The modules among `modules` whose file on disk is no longer the source this process runs."""
    changed = []
    for module in sorted(set(modules)):
        path = getattr(sys.modules.get(module), "__file__", None)
        if path is None:
            continue
        before = imported_source(module)
        if before is None or _read(path) != before:
            changed.append(module)
    return changed
