"""What `make results` will compute and how long it should take on this machine, said before it starts.

The estimate starts from each entry's recorded wall time (`meta.json`'s `wall_time_s`, measured in
the worker that computed it) and scales it by a calibration: `calibrate` times a fixed small
training step (a convolution and a matrix product, forward and backward) in fp32, and under bf16
autocast when bf16 runs are scheduled, for about a second each, on the thread count a worker
will use. The workers measure the same calibration just before each run and keep it beside the
entry (`calibration.json`), so a later estimate compares like with like:

    estimate here = recorded wall time × (recording worker's steps/s ÷ this machine's steps/s)

in the run's precision. Entries recorded before calibrations were kept have no score: their
estimate assumes the recording machine's speed, and says so. A missing entry has no recorded time:
it is estimated from its closest computed sibling (same experiment and precision, most fields
alike), at that sibling's estimate here, scaled by the ratio of their epochs; only without one is
it the planner's rough per-epoch table (`plan.expected_cost`). Each estimate says which.

bf16 needs hardware to pay: AMX (`amx_bf16`) or AVX-512 BF16 (`avx512_bf16`). Without them
PyTorch emulates bf16, measured 5-10× *slower* than fp32 on a 2-core AMD EPYC; a bf16 run recorded
on a CPU with those units and estimated here without a calibration score is scaled by this
machine's bf16/fp32 slowdown, as a lower bound. When bf16 runs are scheduled on such a CPU,
`confirm` says so before anything starts and needs `--yes` (or HW3_YES=1) where there is no
terminal to ask.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hw3.compute import ask
from hw3.store import fingerprint

CALIBRATION = "calibration.json"  # beside an entry's meta.json, written by the worker that computed it
BF16_UNITS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_units() -> str:
    """'amx_bf16', 'avx512_bf16', 'none' or 'unknown' (a seam: tests fake the CPU here)."""
    return fingerprint.cpu_bf16_units()


# ----------------------------------------------------------------------------------------------
# Calibration


def _step(precision: str):
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 16, 28, 28, generator=gen)
    w = torch.randn(32, 16, 3, 3, generator=gen, requires_grad=True)
    a = torch.randn(256, 784, generator=gen)
    b = torch.randn(784, 256, generator=gen, requires_grad=True)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.conv2d(x, w, padding=1).float().square().mean() + (a @ b).float().square().mean()
        loss.backward()

    return step


def steps_per_second(precision: str = "fp32", threads: int | None = None, seconds: float = 1.0) -> float:
    """Rate of the calibration step, best of three chunks of about `seconds` / 3 (after one warm-up step)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        step = _step(precision)
        started = time.perf_counter()
        step()  # warm-up, and the size of a chunk
        per_step = time.perf_counter() - started
        n = max(1, int(seconds / 3 / max(per_step, 1e-6)))
        best = 0.0
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(n):
                step()
            best = max(best, n / (time.perf_counter() - started))
        return best
    finally:
        torch.set_num_threads(before)


def calibrate(threads: int | None = None, bf16: bool = True) -> dict:
    """This machine's calibration: steps/s in fp32 (and bf16), the CPU, its bf16 units, the threads."""
    import torch

    out = {"fp32": steps_per_second("fp32", threads), "cpu": fingerprint.cpu_model(), "bf16_units": cpu_bf16_units(),
           "threads": threads or torch.get_num_threads()}
    if bf16:
        out["bf16"] = steps_per_second("bf16", threads)
    return out


def record(folder: Path, calibration: dict) -> None:
    """Keep a run's calibration beside its entry (atomically; the entry's own files are not touched)."""
    if not (folder / "meta.json").exists():
        return
    tmp = folder / f".{CALIBRATION}.tmp"
    tmp.write_text(json.dumps(calibration, indent=1, sort_keys=True) + "\n")
    tmp.replace(folder / CALIBRATION)


def record_for(exp, config, calibration: dict) -> None:
    """`record` beside the entry of `exp(config)`; a calibration that cannot be kept only costs later estimates."""
    folder = getattr(exp, "folder", None)  # an Experiment; stand-ins in tests may have no cache folder
    if folder is None:
        return
    try:
        record(folder(config), calibration)
    except OSError:
        pass


def recorded(folder: Path) -> dict | None:
    try:
        value = json.loads((folder / CALIBRATION).read_text())
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------
# Estimates


def precision(config: Any) -> str:
    """'bf16' when the config, or any config it holds (bonus-final's runs), trains in bf16; else 'fp32'."""
    def walk(value: Any) -> bool:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return getattr(value, "precision", None) == "bf16" or any(walk(getattr(value, f.name)) for f in dataclasses.fields(value))
        if isinstance(value, (tuple, list)):
            return any(walk(v) for v in value)
        return False

    return "bf16" if walk(config) else "fp32"


@dataclass
class Estimate:
    name: str
    state: str  # 'stale', 'missing' or 'cached' (recomputed with --force, or because it reads a recomputed run)
    precision: str
    seconds: float
    basis: str  # how `seconds` was obtained, in words
    kind: str  # 'calibrated', 'assumed' (recording machine's speed), 'bf16-bound', 'sibling' or 'guess'


def _recorded_wall(exp, config) -> float | None:
    wall = (exp.read_meta(config) or {}).get("wall_time_s")
    return float(wall) if isinstance(wall, (int, float)) and not isinstance(wall, bool) else None


def _sibling(exp, config, candidates: list) -> Any:
    """The computed config of the same experiment and precision with the most fields equal to `config`'s, or None."""
    def alike(other) -> int:
        return sum(getattr(other, f.name, None) == getattr(config, f.name) for f in dataclasses.fields(config))

    same = [c for e, c in candidates if e is exp and c != config and type(c) is type(config)
            and precision(c) == precision(config) and _recorded_wall(e, c) is not None]
    return max(same, key=alike, default=None)


def estimate_run(exp, config, here: dict, siblings: list | None = None) -> Estimate:
    """The time `exp(config)` should take here, from its recorded wall time scaled by the calibrations.

    A run never computed is estimated from its closest computed sibling among `siblings` (default:
    every registered run), at the sibling's estimate here.
    """
    from hw3.compute.plan import expected_cost

    name, prec = exp.name(config), precision(config)
    state = exp.status(config).state
    meta = exp.read_meta(config) or {}
    wall = _recorded_wall(exp, config)
    if wall is None:
        sibling = _sibling(exp, config, _registered() if siblings is None else siblings) \
            if dataclasses.is_dataclass(config) else None
        if sibling is None:
            guess = expected_cost((exp, config))
            return Estimate(name, state, prec, guess, "never recorded: the runner's rough per-epoch guess", "guess")
        base = estimate_run(exp, sibling, here, siblings=[])
        ratio = (config.epochs / sibling.epochs) if getattr(sibling, "epochs", 0) and getattr(config, "epochs", 0) else 1.0
        return Estimate(name, state, prec, base.seconds * ratio,
                        f"never computed: as {exp.name(sibling)} here ({duration(base.seconds)}, {base.kind})"
                        + (f" × {ratio:.2f} for its epochs" if ratio != 1.0 else ""), "sibling")
    machine = meta.get("machine", {})
    cpu = machine.get("cpu", "an unknown CPU")
    then = recorded(exp.folder(config)) or {}
    if then.get(prec) and here.get(prec):
        seconds = wall * then[prec] / here[prec]
        return Estimate(name, state, prec, seconds, f"recorded {wall:.0f} s, × {then[prec] / here[prec]:.2f} by the "
                                                    f"calibrations ({then[prec]:.0f} then, {here[prec]:.0f} now)", "calibrated")
    if prec == "bf16" and machine.get("bf16_units") in BF16_UNITS and here.get("bf16_units") not in BF16_UNITS \
            and here.get("bf16") and here.get("fp32"):
        slowdown = here["fp32"] / here["bf16"]
        return Estimate(name, state, prec, wall * slowdown,
                        f"recorded {wall:.0f} s on {cpu} with {machine['bf16_units']}, × {slowdown:.1f}: at least", "bf16-bound")
    return Estimate(name, state, prec, wall, f"recorded {wall:.0f} s on {cpu}, its speed assumed", "assumed")


def wall_clock(estimates: dict[str, float], levels: list[list[str]], jobs: int) -> float:
    """Wall-clock seconds for `levels` run one after the other, each on `jobs` workers taking the longest run first."""
    total = 0.0
    for level in levels:
        workers = [0.0] * max(1, min(jobs, len(level)))
        for name in sorted(level, key=lambda n: -estimates[n]):
            heapq.heappush(workers, heapq.heappop(workers) + estimates[name])
        total += max(workers)
    return total


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _registered() -> list:
    from hw3.experiments import registry

    return registry.all_experiments()


def plan(todo: list, jobs: int, threads: int, here: dict, siblings: list | None = None) -> tuple[list[Estimate], float]:
    """Each run's estimate, and the wall clock for `jobs` workers of `threads` threads, level by level."""
    from hw3.compute.plan import levels

    siblings = [*todo, *(_registered() if siblings is None else siblings)]
    estimates = [estimate_run(exp, config, here, siblings) for exp, config in todo]
    by_name = {e.name: e.seconds for e in estimates}
    return estimates, wall_clock(by_name, [[exp.name(c) for exp, c in level] for level in levels(todo)], jobs)


def describe(estimates: list[Estimate], wall: float | None, here: dict, workers: str) -> list[str]:
    lines = [f"To compute: {len(estimates)} experiment(s), {workers}; estimated from the recorded wall times:"]
    for e in estimates:
        state = "rerun" if e.state == "cached" else e.state  # --force, or it reads a recomputed run
        lines.append(f"  {e.name:60} {state:8} {e.precision:5} about {duration(e.seconds):>7}   ({e.basis})")
    rates = f"fp32 {here['fp32']:.0f} steps/s" + (f", bf16 {here['bf16']:.0f} steps/s" if here.get("bf16") else "")
    lines.append(f"Calibration here ({here['cpu']}, {here['threads']} thread(s) per worker): {rates}.")
    worker_time = sum(e.seconds for e in estimates)
    total = f"about {duration(wall)} of wall clock ({duration(worker_time)} of worker time)" if wall is not None \
        else f"about {duration(worker_time)} of worker time"
    lines.append(f"Estimate on this machine: {total}.")
    assumed = [e for e in estimates if e.kind == "assumed"]
    if assumed:
        lines.append(f"  {len(assumed)} run(s) were recorded without a calibration: their estimate assumes the recording "
                     "machine's speed (this machine's load and speed may differ by a factor of two or more).")
    bounded = [e for e in estimates if e.kind == "bf16-bound"]
    if bounded:
        lines.append(f"  {len(bounded)} bf16 run(s) recorded on a CPU with bf16 units are scaled by this machine's bf16/fp32 "
                     f"slowdown in the calibration ({here['fp32'] / here['bf16']:.1f}×): a lower bound, as bf16 ran faster "
                     "than fp32 there.")
    from_siblings = [e for e in estimates if e.kind == "sibling"]
    if from_siblings:
        lines.append(f"  {len(from_siblings)} run(s) were never computed: each is estimated from a computed run of the "
                     "same experiment, at that run's estimate here.")
    guessed = [e for e in estimates if e.kind == "guess"]
    if guessed:
        lines.append(f"  {len(guessed)} run(s) were never computed and have no computed sibling: their estimate is the "
                     "runner's rough per-epoch guess.")
    return lines


def bf16_warning(estimates: list[Estimate], here: dict) -> str | None:
    """The warning for bf16 runs on a CPU without bf16 units, or None when there is nothing to warn about."""
    bf16 = [e for e in estimates if e.precision == "bf16"]
    if not bf16 or here.get("bf16_units") != "none":
        return None
    slower = f", {here['fp32'] / here['bf16']:.1f}× slower than fp32 in the calibration" if here.get("bf16") else ""
    return (f"WARNING: {len(bf16)} of these runs train in bf16, and this CPU ({here['cpu']}) has no bf16 units "
            f"(neither amx_bf16 nor avx512_bf16 in its flags): PyTorch emulates bf16 here{slower}. Those runs alone "
            f"should take about {duration(sum(e.seconds for e in bf16))} of worker time on this machine.")


def confirm(todo: list, jobs: int | None = None, device: str | None = None, scheduler: str | None = None,
            yes: bool = False, stdin=None, out=None, threads: int | None = None, dry_run: bool = False) -> bool:
    """Print what will be computed and the estimate; ask when bf16 would be emulated. True: go ahead.

    Raises ValueError (the CLI's exit status 2) when confirmation is needed and there is no terminal
    to ask, and neither `yes` nor HW3_YES=1 gives it. With `dry_run` it only prints, and asks nothing.
    """
    from hw3.compute.plan import cores as _cores

    stdin, out = stdin or sys.stdin, out or sys.stdout
    if not todo:
        if dry_run:
            print("Dry run: every experiment asked for is cached and current; nothing would be computed.", file=out)
        return True
    on_gpu = (device or "auto").startswith("cuda") or (device in (None, "auto") and _cuda_available())
    if on_gpu:
        print(f"To compute on the GPU: {len(todo)} experiment(s); the recorded times are CPU times, so no estimate.", file=out)
        return True
    if scheduler:
        jobs, workers = None, f"on the Dask cluster at {scheduler} (estimated as if its workers were this machine)"
        threads = threads or None
    else:
        jobs = jobs or min(_cores(), len(todo))
        threads = threads or max(1, _cores() // jobs)
        workers = f"{jobs} worker(s) × {threads} thread(s)"
    here = calibrate(threads or 1, bf16=any(precision(c) == "bf16" for _, c in todo))
    estimates, wall = plan(todo, jobs or 1, threads or 1, here)
    for line in describe(estimates, None if scheduler else wall, here, workers):
        print(line, file=out)
    warning = bf16_warning(estimates, here)
    if warning is not None:
        print(warning, file=out)
    if dry_run:
        print("Dry run: nothing was computed.", file=out, flush=True)
        return True
    if warning is None:
        out.flush()
        return True
    return ask.confirmed("Compute anyway?", "bf16 runs on a CPU without bf16 units need confirmation: pass --yes "
                         "(or set HW3_YES=1) to compute them anyway; nothing was computed", yes=yes, stdin=stdin, out=out)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
