"""What a run actually did: the package functions that ran, and the inputs it read that code cannot show.

The fingerprint's static walk cannot see a function reached through `getattr` with a computed name,
`importlib`, a registration dict or an import inside a function. So while an experiment runs, a
profiling hook (`sys.setprofile`, and `threading.setprofile` for threads started during the run;
Python 3.11 has no `sys.monitoring`) records the code object of every Python function called. After
the run, those of the package's files are mapped to their top-level definition and added to the
fingerprint (`hw3.store.fingerprint`). The hook does one set insertion per Python call; its cost on
a training epoch is measured by `benchmarks/profile_hook.py` (docs/store.md gives the figures).

Two inputs no source shows are refused when package code reads them during a run:
- an environment variable read by package code (through `os.environ` or `os.getenv`) other than in
  a module that sets `FINGERPRINT_EXEMPT` (`hw3.environment`: where the data and cache are);
- a file inside the package's folder that is not source (`np.load` of a shipped array, say): seen by
  an audit hook on `open`. Data belongs in the data folder, where `record_data_file` hashes it.

Not seen: Python code run by threads that existed before the run started (torch's own worker threads
run C++; the package starts none), and C code (covered by the recorded library versions).
"""

from __future__ import annotations

import _collections_abc
import contextlib
import dataclasses
import os
import sys
import threading
import types
from collections.abc import Iterator

FINGERPRINT_EXEMPT = True  # how runs are watched, not what they compute


@dataclasses.dataclass
class Recording:
    codes: set = dataclasses.field(default_factory=set)  # code objects of every Python function called
    environment: list = dataclasses.field(default_factory=list)  # (variable, code object that read it)
    opened: list = dataclasses.field(default_factory=list)  # paths of the files opened


_active: list[Recording] = []
_installed = False
# os.environ's own frames (`get`, `getenv`; frozen modules name their code '<frozen os>'): the reader is above them.
_SKIPPED_FILES = {os.__file__, _collections_abc.__file__, os.getenv.__code__.co_filename,
                  _collections_abc.Mapping.get.__code__.co_filename}


def _install() -> None:
    """Once per process: the environment and `open` observers (an audit hook cannot be removed; both do
    nothing while no run is recorded)."""
    global _installed
    if _installed:
        return
    _installed = True
    getitem = os._Environ.__getitem__

    def recorded_getitem(self, key):
        if _active and self is os.environ:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename in _SKIPPED_FILES:
                frame = frame.f_back
            if frame is not None:
                for rec in _active:
                    rec.environment.append((key, frame.f_code))
        return getitem(self, key)

    os._Environ.__getitem__ = recorded_getitem

    def audit(event, args):
        if event == "open" and _active and isinstance(args[0], (str, bytes, os.PathLike)):
            for rec in _active:
                rec.opened.append(os.fsdecode(args[0]))

    sys.addaudithook(audit)


@contextlib.contextmanager
def recording() -> Iterator[Recording]:
    """Record what runs inside the block (see the module docstring)."""
    _install()
    rec = Recording()
    add = rec.codes.add

    def profile(frame, event, arg):
        if event == "call":
            add(frame.f_code)

    previous = sys.getprofile(), threading._profile_hook  # noqa: SLF001 (restored exactly)
    _active.append(rec)
    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        yield rec
    finally:
        sys.setprofile(previous[0])
        threading.setprofile(previous[1])
        _active.remove(rec)
        for outer in _active:  # a nested recording's calls belong to the enclosing one too
            outer.codes |= rec.codes


def package_files(package: str) -> dict[str, str]:
    """{source file: module} of the loaded modules of `package`."""
    return {os.path.abspath(m.__file__): name for name, m in list(sys.modules.items())
            if name.split(".")[0] == package and isinstance(m, types.ModuleType) and getattr(m, "__file__", None)}


def package_root(package: str) -> str | None:
    module = sys.modules.get(package)
    path = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path else None
