"""Toy experiments for tests/test_runner.py and tests/test_dask.py: trivial bodies, no training.

Importable by worker processes (loky or Dask) when tests/ is on their PYTHONPATH; the tests set it
before any worker starts. The graph: `leaf` runs, `total` reads some leaves, `top` reads some totals.

Each computed call appends `name start end` to the file named by $HW3_RUNNER_TOY_LOG (when set),
so a test can tell computed calls from cache hits, and check the order, across processes.
`leaf` sleeps `config.sleep` seconds so that the order of starts and ends means something.
`SALT` is read by `leaf`: a test that changes it makes every leaf entry stale (a constant changed).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from hw3.store.cached import RunSettings, experiment
from hw3.store.runtime import declare_not_a_result

# Where each computed call is logged, for the tests: read during runs, and no part of any result.
LOG_VARIABLE = declare_not_a_result("HW3_RUNNER_TOY_LOG")

SALT = 1


@dataclass(frozen=True)
class LeafConfig:
    x: int
    model: str = "mlp"  # only for the runner's cost estimate (longest first within a level)
    epochs: int = 1
    sleep: float = 0.0


@dataclass(frozen=True)
class TotalConfig:
    leaves: tuple[LeafConfig, ...]


@dataclass(frozen=True)
class TopConfig:
    totals: tuple[TotalConfig, ...]


def _log(name: str, started: float) -> None:
    log = os.environ.get(LOG_VARIABLE)
    if log:
        with open(log, "a") as f:
            f.write(f"{name} {started!r} {time.time()!r}\n")


@experiment("toy-leaf")
def leaf(config: LeafConfig, settings: RunSettings) -> dict:
    started = time.time()
    time.sleep(config.sleep)
    out = {"value": 10 * config.x + SALT}
    _log(leaf.name(config), started)
    return out


@experiment("toy-total", depends=lambda config: [(leaf, c) for c in config.leaves])
def total(config: TotalConfig, settings: RunSettings, upstream: dict[str, dict]) -> dict:
    started = time.time()
    out = {"value": sum(r["value"] for r in upstream.values()), "read": sorted(upstream)}
    _log(total.name(config), started)
    return out


@experiment("toy-top", depends=lambda config: [(total, c) for c in config.totals])
def top(config: TopConfig, settings: RunSettings, upstream: dict[str, dict]) -> dict:
    started = time.time()
    out = {"value": max(r["value"] for r in upstream.values()), "read": sorted(upstream)}
    _log(top.name(config), started)
    return out


def calls(log: str | os.PathLike) -> list[tuple[str, float, float]]:
    """(name, start, end) of every computed call logged so far, in the order they finished."""
    path = Path(log)
    if not path.exists():
        return []
    return [(n, float(s), float(e)) for n, s, e in (line.split() for line in path.read_text().splitlines())]


# A small graph: two leaves → one total; a third leaf → a second total; both totals → top.
A, B, C = LeafConfig(1, sleep=0.3), LeafConfig(2, model="cnn", sleep=0.3), LeafConfig(3)
AB, CC = TotalConfig((A, B)), TotalConfig((C,))
TOP = TopConfig((AB, CC))
GRAPH = [(leaf, A), (leaf, B), (leaf, C), (total, AB), (total, CC), (top, TOP)]


@dataclass(frozen=True)
class BrokenConfig:
    message: str = "FashionMNIST/raw/train-images-idx3-ubyte is missing"


@experiment("toy-broken")
def broken(config: BrokenConfig, settings: RunSettings) -> dict:
    """Fails like a run whose data is missing."""
    from hw3.nn.data import DataError

    raise DataError(config.message)


@dataclass(frozen=True)
class TimedConfig:
    x: int = 1


@experiment("toy-timed")
def timed(config: TimedConfig, settings: RunSettings) -> dict:
    """Returns run facts in its "meta" the way experiments.skeleton does: a wall time that differs every run."""
    import numpy as np

    started = time.perf_counter()
    weights = np.arange(6, dtype=np.float32).reshape(2, 3) * config.x
    return {"weights": weights, "meta": {"wall_time_s": time.perf_counter() - started + time.time() % 1, "device": "cpu",
                                         "threads": 1, "num_parameters": 6}}
