"""RETRAIN: every result the notebook shows is computed now, by the notebook's own definitions.

`start(ns)` switches `hw3.report.record.load` from the store to this module for the rest of the
process: a result is computed on first use (its upstream results first), kept in memory, and
never read from or written to `cache/`. Each experiment runs inside `notebook.rebound(ns)`, so the
data, model, optimiser, training and evaluation functions it reaches are the notebook's cells.
The experiments' own glue (which data, which model, which options) is the package's.

`HW3_RETRAIN_EPOCHS=N` trains every run for N epochs instead of its config's: a test-only
override, so that a test can retrain the whole notebook in minutes; the results are then labelled
with their registered configs but are not those configs' results.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import torch

from hw3.compute import estimate
from hw3.experiments import registry
from hw3.nn import train
from hw3.report import notebook
from hw3.store.cached import RunSettings

_active: Retrainer | None = None


class Retrainer:
    def __init__(self, ns: Mapping, device: str | None = None, epochs: int | None = None):
        self.ns, self.epochs = ns, epochs
        self.settings = RunSettings(device=device)
        self.outputs: dict[str, Any] = {}

    def _config(self, config: Any) -> Any:
        if self.epochs and dataclasses.is_dataclass(config) and "epochs" in {f.name for f in dataclasses.fields(config)}:
            return dataclasses.replace(config, epochs=self.epochs)
        return config

    def output(self, experiment, config: Any) -> Any:
        """The experiment's output for `config`, computed now (once per process) with the notebook's code."""
        name = experiment.name(config)
        if name not in self.outputs:
            upstream = {e.name(c): self.output(e, c) for e, c in experiment.upstream(config)}
            print(f"RETRAIN: computing {name} ...", end=" ", flush=True)
            started = time.perf_counter()
            with notebook.rebound(self.ns):
                args = (self._config(config), self.settings) + ((upstream,) if experiment.upstream(config) else ())
                self.outputs[name] = experiment.func(*args)
            print(f"{time.perf_counter() - started:.0f} s", flush=True)
        return self.outputs[name]


def active() -> Retrainer | None:
    return _active


def start(ns: Mapping | None = None, device: str | None = None) -> Retrainer:
    """From now on, `record.load` computes with the notebook's code. Prints the plan and its estimate first."""
    global _active
    ns = vars(sys.modules["__main__"]) if ns is None else ns
    epochs = int(os.environ["HW3_RETRAIN_EPOCHS"]) if os.environ.get("HW3_RETRAIN_EPOCHS") else None
    _active = Retrainer(ns, device, epochs)
    used = train.pick_device(device)
    runs = registry.all_experiments()
    print(f"RETRAIN is on: the {len(runs)} results below are computed now with this notebook's code, on "
          f"{used.type}{' (' + torch.cuda.get_device_name() + ')' if used.type == 'cuda' else ''}, none read from cache/."
          + (f" Test override: {epochs} epoch(s) per run." if epochs else ""))
    if used.type == "cpu" and not epochs:
        print(plan_text(runs))
    return _active


def plan_text(runs: list) -> str:
    """What RETRAIN will compute and the time it should take on this CPU (from the recorded times, calibrated)."""
    here = estimate.calibrate(bf16=any(estimate.precision(c) == "bf16" for _, c in runs))
    estimates, wall = estimate.plan(runs, jobs=1, threads=torch.get_num_threads(), here=here)
    return "\n".join(estimate.describe(estimates, wall, here, "this notebook's one process"))
