"""What a run actually did: the package functions that ran, and the inputs it read that code cannot show.

The fingerprint's static walk cannot see a function reached through `getattr` with a computed name,
`importlib`, a registration dict or an import inside a function. So a run records every package
function that starts running: the package's modules are compiled by `hw3.store.sources`, which makes
each function and lambda add `(module, line)` to a set on entry (a dict lookup and a set insertion per
call of a package function; library code is untouched). After the run, they are mapped to their
top-level definitions and added to the fingerprint (`hw3.store.fingerprint.what_ran`). A package whose
modules were not compiled that way is recorded by a global trace function instead (`sys.settrace`,
and `threading.settrace` for threads started during the run; Python 3.11 has no `sys.monitoring`),
which slowed an MLP epoch by about 25%. `benchmarks/profile_hook.py` measures the cost on training
epochs (docs/store.md gives the figures).

Two inputs no source shows are refused when package code reads them during a run:
- an environment variable read by package code (through `os.environ` or `os.getenv`) other than in
  a module that sets `FINGERPRINT_EXEMPT` (`hw3.environment`: where the data and cache are), unless
  declared with `declare_not_a_result` (a log file's path, say);
- a file inside the package's folder that is not source (`np.load` of a shipped array, say): seen by
  an audit hook on `open`. Data belongs in the data folder, where `record_data_file` hashes it.

Not seen: C code (covered by the recorded library versions); in trace mode only, Python code run by
threads that existed before the run started. Code that runs in another thread during the run is
recorded too (an over-approximation: it can only add to the fingerprint).
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

from hw3.store import sources

FINGERPRINT_EXEMPT = True  # how runs are watched, not what they compute


@dataclasses.dataclass
class Recording:
    ran: set = dataclasses.field(default_factory=set)  # (module, line) of the instrumented functions that ran (0: module code)
    codes: set = dataclasses.field(default_factory=set)  # code objects of every Python function called (trace mode)
    environment: list = dataclasses.field(default_factory=list)  # (variable, code object that read it)
    opened: list = dataclasses.field(default_factory=list)  # paths of the files opened


_active: list[Recording] = []
_NOT_RESULTS: set[str] = set()  # environment variables declared not to change any result


def declare_not_a_result(variable: str) -> str:
    """Declare that the environment variable `variable` cannot change a result (a log file, a progress
    display), so that package code may read it during a run. A declaration, trusted: keep it to variables
    whose value never reaches what an experiment returns. Returns `variable`."""
    _NOT_RESULTS.add(variable)
    return variable


def environment_reads(rec: Recording) -> list:
    """(variable, code object) of the reads of undeclared variables during the run."""
    return [(v, code) for v, code in rec.environment if v not in _NOT_RESULTS]

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


def _instrumented(package: str) -> bool:
    """Does every loaded module of `package` that defines functions or classes record its runs?"""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] != package or getattr(module, "FINGERPRINT_EXEMPT", False) or sources.instrumented(name):
            continue
        if any(isinstance(v, (types.FunctionType, type)) and getattr(v, "__module__", None) == name for v in vars(module).values()):
            return False
    return True


@contextlib.contextmanager
def recording(package: str | None = None) -> Iterator[Recording]:
    """Record what runs inside the block (see the module docstring).

    When every module of `package` was compiled by `hw3.store.sources` (instrumented), each of its
    functions records its own runs, and nothing else is hooked. Otherwise (a package that does not
    call `watch`) a global trace function records every Python frame: several times dearer.
    """
    _install()
    rec = Recording()
    saved = set(sources.RAN)
    sources.RAN.clear()
    trace = package is None or not _instrumented(package)
    previous = sys.gettrace(), threading._trace_hook  # noqa: SLF001 (restored exactly)
    if trace:
        add, outer = rec.codes.add, previous[0]

        # Called once per new Python frame; returning None (no local trace) means no line or return
        # events. A tracer already set (coverage, a debugger) keeps working: it is chained.
        def hook(frame, event, arg):
            add(frame.f_code)
            return None if outer is None else outer(frame, event, arg)

        sys.settrace(hook)
        threading.settrace(hook)
    _active.append(rec)
    try:
        yield rec
    finally:
        if trace:
            sys.settrace(previous[0])
            threading.settrace(previous[1])
        _active.remove(rec)
        rec.ran = set(sources.RAN)
        sources.RAN.update(saved)  # an enclosing recording sees what ran inside this one too
        for enclosing in _active:
            enclosing.codes |= rec.codes


def package_files(package: str) -> dict[str, str]:
    """{source file: module} of the loaded modules of `package`."""
    return {os.path.abspath(m.__file__): name for name, m in list(sys.modules.items())
            if name.split(".")[0] == package and isinstance(m, types.ModuleType) and getattr(m, "__file__", None)}


def package_root(package: str) -> str | None:
    """The package's folder (None for a single-module "package", whose folder is not its own)."""
    module = sys.modules.get(package)
    path = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path and hasattr(module, "__path__") else None
