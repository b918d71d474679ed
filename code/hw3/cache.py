"""The cache of expensive results: joblib.Memory under cache/, plus a cache-only mode for CI and renders.

Every experiment is one call `run(config)` of a function decorated with `@experiment`, keyed by
the hash of a frozen dataclass config. In cache-only mode (HW3_CACHE_ONLY=1) a call that is not
cached, or whose cached function's code has changed since the entry was written, raises
`CacheMissError` naming the experiment and the command that recomputes it; it never trains.

The cache is pickle: load only caches you trust (your own, or this repository's).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from joblib import Memory
from joblib.func_inspect import get_func_code
from joblib.memory import _FUNCTION_HASHES, extract_first_line

from .paths import cache_dir

T = TypeVar("T")
REFRESH_COMMAND = "make results"


class CacheMissError(RuntimeError):
    """A result the report needs is not in the cache (or is stale, or unreadable) in cache-only mode."""


def cache_only() -> bool:
    return os.environ.get("HW3_CACHE_ONLY", "").strip().lower() not in ("", "0", "false", "no")


def memory() -> Memory:
    # Built on each call so HW3_CACHE_DIR set after import (tests, workers) is honoured.
    return Memory(str(cache_dir()), verbose=0)


def experiment_name(config: Any) -> str:
    name = getattr(config, "name", None)
    return name if isinstance(name, str) else repr(config)


def _check_config(config: Any) -> None:
    if isinstance(config, type) or not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):
        raise TypeError(f"cached experiments take a frozen dataclass config, got {type(config).__name__}")


class Experiment:
    """A cached `func(config) -> dict`. Call it to get the result; see `status` and `load_cached`."""

    def __init__(self, func: Callable[[Any], T]):
        self.func = func
        functools.update_wrapper(self, func)

    @property
    def memorized(self):
        return memory().cache(self.func)

    def _call_id(self, config: Any) -> tuple[str, str]:
        memorized = self.memorized
        return memorized.func_id, memorized._get_args_id(config)

    def status(self, config: Any) -> str:
        """'cached', 'missing' or 'stale' (the function's code changed since the entry was written).

        Unlike joblib's own check this never clears anything, so asking is always safe.
        """
        memorized = self.memorized
        backend = memorized.store_backend
        try:
            stored, _ = extract_first_line(backend.get_cached_func_code([memorized.func_id]))
        except OSError:
            return "missing"
        if stored != get_func_code(self.func)[0]:
            return "stale"
        return "cached" if backend.contains_item(self._call_id(config)) else "missing"

    def load_cached(self, config: Any) -> T:
        """The cached result, or CacheMissError naming the experiment and how to recompute it."""
        name = experiment_name(config)
        state = self.status(config)
        if state != "cached":
            why = "is not in the cache" if state == "missing" else f"is stale: {self.func.__name__}'s code changed since it was cached"
            raise CacheMissError(f"experiment '{name}' {why} (cache: {cache_dir()}). Recompute it with `{REFRESH_COMMAND}` (or `python -m hw3 run {name}`), then commit cache/.")
        try:
            return self.memorized.store_backend.load_item(self._call_id(config), verbose=0)
        except Exception as exc:  # a truncated or corrupt pickle: say which entry, and how to mend it
            raise CacheMissError(f"experiment '{name}': its cache entry is unreadable ({type(exc).__name__}: {exc}). Recompute it with `python -m hw3 run {name}`.") from exc

    def clear(self, config: Any) -> None:
        """Forget one cached result (the next call recomputes it)."""
        memorized = self.memorized
        if memorized.store_backend.contains_item(self._call_id(config)):
            memorized.store_backend.clear_item(self._call_id(config))

    def __call__(self, config: Any) -> T:
        _check_config(config)
        if cache_only():
            return self.load_cached(config)
        # joblib writes the output to a temporary file and renames it, so an interrupted run leaves
        # no half entry, and it recomputes (with a warning) an entry it cannot unpickle.
        memorized = self.memorized
        try:
            memorized.store_backend.get_cached_func_code([memorized.func_id])
        except OSError:
            # joblib remembers per process, not per cache folder, which functions' code it has stored:
            # after HW3_CACHE_DIR changes it would write entries here without func_code.py, and
            # `status` (so cache-only mode) would call them missing. Make it store the code here too.
            _FUNCTION_HASHES.pop(self.func, None)
        return memorized(config)


def experiment(func: Callable[[Any], T]) -> Experiment:
    """Decorator: make `func(config)` a cached experiment."""
    return Experiment(func)
