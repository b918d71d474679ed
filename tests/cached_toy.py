"""Tiny cached experiments for tests/test_cache.py, importable by child processes (tests/ on PYTHONPATH).

Each call of an experiment's body appends the experiment's name to the file named by
$HW3_TOY_CALLS (when set), so a test can tell computed calls from cache hits, even across processes.
`slow_toy` also touches $HW3_TOY_MARKER when it starts and then sleeps $HW3_TOY_SLEEP seconds
(the sleep is not part of the config, so the killed run and its rerun share one cache key).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

from hw3.cache import experiment


@dataclass(frozen=True)
class ToyConfig:
    a: int = 1
    b: str = "x"

    @property
    def name(self) -> str:
        return f"toy-{self.a}-{self.b}"


@dataclass
class MutableConfig:  # not frozen: must be refused
    a: int = 1


def _log_call(config: ToyConfig) -> None:
    log = os.environ.get("HW3_TOY_CALLS")
    if log:
        with open(log, "a") as f:
            f.write(config.name + "\n")


def calls(log: str | os.PathLike) -> list[str]:
    """The names logged so far (empty when nothing was computed)."""
    path = Path(log)
    return path.read_text().split() if path.exists() else []


@experiment
def toy(config: ToyConfig) -> dict:
    _log_call(config)
    return {"a": config.a, "b": config.b, "noise": random.random()}


@experiment
def slow_toy(config: ToyConfig) -> dict:
    _log_call(config)
    marker = os.environ.get("HW3_TOY_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("HW3_TOY_SLEEP", "0")))
    return {"a": config.a, "b": config.b, "noise": random.random()}
