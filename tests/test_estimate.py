"""hw3.compute.estimate: before `make results` computes anything it says what and how long, and on a CPU
without bf16 units it warns about bf16 runs and needs a confirmation.

The CPU's capabilities and its calibration are faked (`estimate.cpu_bf16_units`,
`estimate.steps_per_second`), so nothing here depends on the machine or times anything. The
experiments are toys defined here, computed in this process (a single run: joblib runs it inline)
in the private cache of conftest.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest

from hw3 import cli
from hw3.compute import estimate, runner
from hw3.experiments import registry
from hw3.store.cached import RunSettings, experiment

COMPUTED: list[str] = []


@dataclass(frozen=True)
class ToyRun:
    precision: str = "bf16"
    epochs: int = 2


@experiment("toy-estimate")
def toy(config: ToyRun, settings: RunSettings) -> dict:
    print("TOY COMPUTING", flush=True)
    COMPUTED.append(config.precision)
    return {"value": 1}


BF16, FP32 = ToyRun("bf16"), ToyRun("fp32")


@pytest.fixture
def fake_cpu(monkeypatch):
    """A CPU without bf16 units on which bf16 runs 10× slower than fp32; toy names resolve in the CLI."""
    COMPUTED.clear()
    rates = {"fp32": 100.0, "bf16": 10.0}
    monkeypatch.setattr(estimate, "cpu_bf16_units", lambda: "none")
    monkeypatch.setattr(estimate, "steps_per_second", lambda precision="fp32", threads=None, seconds=1.0: rates[precision])
    monkeypatch.setattr(estimate, "_cuda_available", lambda: False)
    monkeypatch.delenv("HW3_YES", raising=False)
    toys = {toy.name(BF16): (toy, BF16), toy.name(FP32): (toy, FP32)}
    real_lookup = registry.lookup
    monkeypatch.setattr(registry, "lookup", lambda name: toys[name] if name in toys else real_lookup(name))
    return rates


class _Stdin(io.StringIO):
    def __init__(self, text: str, tty: bool):
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_bf16_on_a_cpu_without_bf16_units_warns_and_refuses_without_a_terminal(fake_cpu, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", _Stdin("", tty=False))
    assert cli.main(["run", toy.name(BF16), "--device", "cpu"]) == 2
    out, err = capsys.readouterr()
    assert COMPUTED == [] and toy.status(BF16).state == "missing", "nothing may be computed without confirmation"
    assert "WARNING" in out and "no bf16 units" in out and "10.0× slower than fp32" in out, out
    assert toy.name(BF16) in out and "about" in out, "the plan names the run and its estimate"
    assert "--yes" in err and "HW3_YES=1" in err, err


@pytest.mark.parametrize("how", ["--yes", "HW3_YES=1"])
def test_the_warning_comes_before_any_computation(fake_cpu, capsys, monkeypatch, how):
    monkeypatch.setattr("sys.stdin", _Stdin("", tty=False))
    args = ["run", toy.name(BF16), "--device", "cpu"]
    if how == "--yes":
        args.append("--yes")
    else:
        monkeypatch.setenv("HW3_YES", "1")
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert COMPUTED == ["bf16"]
    assert out.index("WARNING") < out.index("TOY COMPUTING"), out
    assert out.index("Estimate on this machine") < out.index("TOY COMPUTING"), out


@pytest.mark.parametrize("answer,status,computed", [("n\n", 1, []), ("\n", 1, []), ("y\n", 0, ["bf16"])])
def test_at_a_terminal_it_asks(fake_cpu, capsys, monkeypatch, answer, status, computed):
    monkeypatch.setattr("sys.stdin", _Stdin(answer, tty=True))
    assert cli.main(["run", toy.name(BF16), "--device", "cpu"]) == status
    out = capsys.readouterr().out
    assert "[y/N]" in out and COMPUTED == computed
    if not computed:
        assert "Nothing computed" in out


def test_fp32_runs_and_bf16_units_need_no_question(fake_cpu, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", _Stdin("", tty=False))
    assert cli.main(["run", toy.name(FP32), "--device", "cpu"]) == 0
    monkeypatch.setattr(estimate, "cpu_bf16_units", lambda: "amx_bf16")
    assert cli.main(["run", toy.name(BF16), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert COMPUTED == ["fp32", "bf16"] and "WARNING" not in out and "[y/N]" not in out
    assert out.count("Estimate on this machine") == 2


def test_a_computed_entry_keeps_its_calibration_and_later_estimates_scale_by_it(fake_cpu, monkeypatch):
    monkeypatch.setattr(estimate, "cpu_bf16_units", lambda: "amx_bf16")
    runner.run_missing([(toy, BF16)], jobs=1, device="cpu")
    folder = toy.folder(BF16)
    kept = json.loads((folder / estimate.CALIBRATION).read_text())
    assert kept["fp32"] == 100.0 and kept["bf16"] == 10.0 and kept["bf16_units"] == "amx_bf16"
    wall = toy.read_meta(BF16)["wall_time_s"]
    here = {"fp32": 50.0, "bf16": 2.0, "bf16_units": "none"}  # a machine half as fast in fp32, 5× slower in bf16
    e = estimate.estimate_run(toy, BF16, here)
    assert e.kind == "calibrated" and e.seconds == pytest.approx(wall * 10.0 / 2.0)


def test_without_a_calibration_the_estimate_assumes_the_recording_machine_or_bounds_emulated_bf16(fake_cpu):
    toy.compute(BF16)  # through the store alone: no calibration kept
    wall = toy.read_meta(BF16)["wall_time_s"]
    recorded_on = toy.read_meta(BF16)["machine"]["bf16_units"]
    e = estimate.estimate_run(toy, BF16, {"fp32": 100.0, "bf16": 10.0, "bf16_units": "none"})
    if recorded_on in estimate.BF16_UNITS:  # recorded on a CPU with bf16 units: at least this machine's slowdown
        assert e.kind == "bf16-bound" and e.seconds == pytest.approx(wall * 10.0) and "at least" in e.basis
    else:
        assert e.kind == "assumed" and e.seconds == wall and "speed assumed" in e.basis
    toy.compute(FP32)
    e = estimate.estimate_run(toy, FP32, {"fp32": 100.0, "bf16_units": "none"})
    assert e.kind == "assumed" and e.seconds == toy.read_meta(FP32)["wall_time_s"]


def test_a_missing_entry_is_a_guess():
    e = estimate.estimate_run(toy, ToyRun("fp32", epochs=3), {"fp32": 1.0})
    assert e.kind == "guess" and e.state == "missing"


def test_wall_clock_runs_levels_in_turn_longest_first_on_the_workers():
    seconds = {"a": 10.0, "b": 6.0, "c": 5.0, "d": 1.0}
    assert estimate.wall_clock(seconds, [["a", "b", "c"], ["d"]], jobs=2) == 11.0 + 1.0
    assert estimate.wall_clock(seconds, [["a", "b", "c"]], jobs=1) == 21.0


def test_precision_sees_bf16_in_nested_configs():
    @dataclass(frozen=True)
    class Final:
        runs: tuple = (ToyRun("fp32"), ToyRun("bf16"))

    assert estimate.precision(Final()) == "bf16"
    assert estimate.precision(Final(runs=(ToyRun("fp32"),))) == "fp32"
    assert estimate.precision(ToyRun("fp32")) == "fp32"
