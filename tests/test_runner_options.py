"""`run --dry-run`, `run --threads N`, and the estimate of a run never computed (from a computed sibling).

Toy experiments in a private cache; the CPU's calibration is faked, so nothing is timed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from hw3 import cli
from hw3.compute import estimate, runner
from hw3.experiments import registry
from hw3.store.cached import RunSettings, experiment

COMPUTED: list = []


@dataclass(frozen=True)
class Epochs:
    epochs: int = 2
    precision: str = "fp32"
    seed: int = 0


@experiment("toy-options")
def toy(config: Epochs, settings: RunSettings) -> dict:
    import torch

    COMPUTED.append(config)
    return {"epochs": config.epochs, "threads_seen": torch.get_num_threads()}


@pytest.fixture
def fake_cpu(monkeypatch):
    COMPUTED.clear()
    monkeypatch.setattr(estimate, "cpu_bf16_units", lambda: "amx_bf16")
    monkeypatch.setattr(estimate, "steps_per_second", lambda precision="fp32", threads=None, seconds=1.0: 100.0)
    monkeypatch.setattr(estimate, "_cuda_available", lambda: False)
    real = registry.lookup
    monkeypatch.setattr(registry, "lookup", lambda name: (toy, Epochs(int(name.rpartition("epochs")[2])))
                        if name.startswith("toy-options") else real(name))


@pytest.fixture
def restore_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_dry_run_prints_the_plan_and_estimate_and_computes_nothing(fake_cpu, capsys):
    assert cli.main(["run", "toy-options-epochs3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "To compute: 1 experiment(s)" in out and "Estimate on this machine" in out and "Dry run" in out, out
    assert COMPUTED == [] and toy.status(Epochs(3)).state == "missing"


def test_dry_run_asks_nothing_even_for_emulated_bf16(fake_cpu, monkeypatch, capsys):
    monkeypatch.setattr(estimate, "cpu_bf16_units", lambda: "none")
    monkeypatch.setattr(registry, "lookup", lambda name: (toy, Epochs(3, "bf16")))
    monkeypatch.delenv("HW3_YES", raising=False)
    assert cli.main(["run", "toy-options-epochs3-precision-bf16", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and "Dry run" in out and COMPUTED == []


def test_threads_sets_the_workers_torch_threads_and_meta_json_records_it(fake_cpu, restore_threads):
    assert runner.run_missing([(toy, Epochs(2))], jobs=1, device="cpu", threads=3) == 0
    assert toy.load(Epochs(2))["threads_seen"] == 3
    assert toy.read_meta(Epochs(2))["threads"] == 3


def test_the_cli_passes_threads_on(fake_cpu, monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(runner, "run_missing", lambda runs, **kwargs: seen.update(kwargs) or 0)
    assert cli.main(["run", "toy-options-epochs2", "--threads", "2", "--yes"]) == 0
    assert seen["threads"] == 2
    assert "2 thread(s)" in capsys.readouterr().out, "the estimate is for the thread count asked for"


def test_a_never_computed_run_is_estimated_from_a_computed_sibling(fake_cpu, restore_threads):
    runner.run_missing([(toy, Epochs(2))], jobs=1, device="cpu")  # computed, with this machine's calibration
    wall = toy.read_meta(Epochs(2))["wall_time_s"]
    here = {"fp32": 50.0, "bf16_units": "amx_bf16"}  # half the recorded speed
    e = estimate.estimate_run(toy, Epochs(6), here, siblings=[(toy, Epochs(2))])
    assert e.kind == "sibling" and e.seconds == pytest.approx(wall * 2 * 3), e
    assert "toy-options" in e.basis and "never computed" in e.basis
    other_seed = estimate.estimate_run(toy, Epochs(2, seed=1), here, siblings=[(toy, Epochs(2))])
    assert other_seed.kind == "sibling" and other_seed.seconds == pytest.approx(wall * 2)


def test_without_a_computed_sibling_the_estimate_is_still_the_guess(fake_cpu):
    e = estimate.estimate_run(toy, Epochs(6), {"fp32": 50.0}, siblings=[])
    assert e.kind == "guess"
    assert json.dumps(e.__dict__)
