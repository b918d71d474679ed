"""Compute what is stale or missing, in dependency order: locally in worker processes, or on a Dask cluster.

On a small CPU, several single-threaded workers beat one multi-threaded process: these nets are
too small for intra-op parallelism to pay (`make bench` measures it). Locally the workers are
joblib/loky processes, and the graph runs level by level (an experiment starts once everything it
reads is computed). With `scheduler=ADDRESS` the same graph goes to a Dask distributed cluster as
futures that depend on their upstream futures; the cache folder must be shared by the workers.

A run that fails (missing data, a full disk, ...) fails alone: the runs in flight finish and are
written, the runs that read its result are skipped, and each failure is one line at the end.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Any

from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from hw3.compute import allocator, estimate, plan
from hw3.experiments.registry import Run
from hw3.experiments.registry import name_of as _name
from hw3.store import untrusted
from hw3.store.cached import Experiment, RunSettings, prepare_folder


def run_one(exp: Experiment, config: Any, device: str | None = None, threads: int | None = None,
            position: int | None = None, *upstream) -> tuple[str, float | None, str | None]:
    """Worker: compute one experiment and write its entry: (name, seconds, None), or (name, None, why it failed).

    `upstream` only carries the results of the Dask futures this run waits for: a failed one skips it.
    Failures are returned, not raised, so that one failing run does not cancel the others in flight.
    """
    name = exp.name(config)
    failed = [up[0] for up in upstream if isinstance(up, tuple) and len(up) == 3 and up[2] is not None]
    if failed:
        return name, None, f"skipped: it reads {', '.join(failed)}, which failed"
    try:
        return name, _compute(exp, config, device, threads, position), None
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of this run is reported in one line, the others go on
        message = str(exc).splitlines()[0] if str(exc) else ""
        return name, None, f"{type(exc).__name__}: {message}"


def _compute(exp: Experiment, config: Any, device: str | None, threads: int | None, position: int | None) -> float:
    import torch

    if threads:
        torch.set_num_threads(threads)
    allocator.keep_freed_memory()  # process setup, like the threads: results are unchanged, CPU steps faster
    name = exp.name(config)
    bar = tqdm(total=getattr(config, "epochs", None), desc=f"{name[:40]:40}", position=position, leave=False,
               unit="epoch", disable=position is None)

    def progress(epoch: int, record: dict) -> None:
        val = record.get("val", {})
        acc = val.get("acc_all", val.get("acc"))
        bar.update(1)
        if acc is not None:
            bar.set_postfix(val_acc=f"{acc:.3f}")

    # This worker's speed now, kept beside the entry: a later estimate scales the wall time by it (hw3.estimate).
    calibration = estimate.calibrate(threads, bf16=estimate.precision(config) == "bf16")
    started = time.perf_counter()
    try:
        exp.compute(config, RunSettings(device=device, progress=progress))
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    estimate.record_for(exp, config, calibration)
    return seconds


def check_options(jobs: int | None = None, device: str | None = None, threads: int | None = None) -> None:
    """ValueError in one line for a bad --jobs, --device or --threads: checked before any planning."""
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    check_device(device)  # before anything is computed, for every experiment (some never touch a device)


def restore_interrupted(runs: list[Run]) -> None:
    """Put back every entry an interrupted write left beside its folder (hw3.store.swap.restore), before planning."""
    for exp, config in runs:
        if not exp.folder(config).exists():
            prepare_folder(exp.folder(config), exp.key(config))


def run_missing(runs: list[Run], jobs: int | None = None, device: str | None = None, scheduler: str | None = None,
                force: bool = False, threads: int | None = None) -> int:
    """Compute every run that is not current (or all of `runs`, with `force`); print wall times at the end.

    0 when every run was written; 2 when some failed (each said in one line; the others were written).
    """
    check_options(jobs, device, threads)
    restore_interrupted(runs)
    todo = plan.to_compute(runs, force)
    if not todo:
        print(f"All {len(runs)} experiments are cached and current; nothing to compute.")
        return 0
    for exp, config in todo:  # an unwritable cache, a full disk or an interrupted swap: now, not after hours of computing
        prepare_folder(exp.folder(config), exp.key(config))
    started = time.perf_counter()
    results = _run_on_dask(todo, scheduler, device, threads) if scheduler else _run_locally(todo, jobs, device, threads)
    total = time.perf_counter() - started
    times = {name: seconds for name, seconds, error in results if error is None}
    print("\nWall time per experiment:")
    for run in todo:
        if _name(run) in times:
            print(f"  {_name(run):60} {times[_name(run)]:8.1f} s")
    print(f"  {'total (wall clock)':60} {total:8.1f} s   (sum of runs {sum(times.values()):.1f} s)")
    failures = [(name, error) for name, _, error in results if error is not None]
    if failures:
        print(f"\n{len(failures)} of {len(todo)} experiment(s) not computed; the other {len(todo) - len(failures)} "
              "were written:", file=sys.stderr)
    for name, error in failures:
        print(f"error: {name}: {untrusted.terminal(error)}", file=sys.stderr)
    if failures:
        return 2
    return 0


def _run_locally(todo: list[Run], jobs: int | None, device: str | None, threads: int | None = None) -> list[tuple]:
    on_gpu = (device or "auto").startswith("cuda") or (device in (None, "auto") and _cuda_available())
    # One GPU is best fed by one process; on CPU, one single-threaded worker per core.
    jobs = jobs or (1 if on_gpu else min(plan.cores(), len(todo)))
    threads = threads or max(1, plan.cores() // jobs)
    print(f"Computing {len(todo)} experiments with {jobs} worker(s) × {threads} thread(s): {', '.join(map(_name, todo))}")
    results: list[tuple] = []
    failed: set[str] = set()
    overall = tqdm(total=len(todo), desc="experiments", position=0, unit="exp")
    for level in plan.levels(todo):
        ready = []
        for run in level:  # a run that reads a failed one is skipped, not computed with a missing input
            broken = [n for n in plan.upstream_names(run) if n in failed]
            if broken:
                failed.add(_name(run))
                results.append((_name(run), None, f"skipped: it reads {', '.join(broken)}, which failed"))
                overall.update(1)
            else:
                ready.append(run)
        calls = (delayed(run_one)(exp, config, device, threads, 1 + i % jobs) for i, (exp, config) in enumerate(ready))
        with parallel_config(backend="loky", inner_max_num_threads=threads):
            for name, seconds, error in Parallel(n_jobs=max(1, min(jobs, len(ready))), return_as="generator_unordered")(calls):
                results.append((name, seconds, error))
                overall.update(1)
                if error is None:
                    overall.write(f"done {name} in {seconds:.0f} s")
                else:
                    failed.add(name)
                    overall.write(f"FAILED {name}: {untrusted.terminal(error)}")
    overall.close()
    return results


def _run_on_dask(todo: list[Run], scheduler: str, device: str | None, threads: int | None = None) -> list[tuple]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:
        raise RuntimeError("--scheduler needs Dask: pip install -e '.[dask]'") from exc
    with Client(scheduler) as client:
        print(f"Computing {len(todo)} experiments on the Dask cluster at {scheduler}: {', '.join(map(_name, todo))}")
        futures = {}
        for exp, config in todo:  # dependency order: a run's upstream futures exist before it is submitted
            waits = [futures[n] for n in plan.upstream_names((exp, config)) if n in futures]
            futures[exp.name(config)] = client.submit(run_one, exp, config, device, threads, None, *waits,
                                                      key=f"hw3-{exp.name(config)}", pure=False)
        return [future.result() for future in as_completed(list(futures.values()))]


_DEVICE = re.compile(r"cpu|cuda(:\d+)?|auto")


def check_device(device: str | None) -> None:
    """A device this machine has: cpu, cuda, cuda:N or auto (None); ValueError in one line otherwise."""
    if device is None or device == "auto":
        return
    if not _DEVICE.fullmatch(device):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or auto, got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available here")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} was requested but this machine has {torch.cuda.device_count()} CUDA device(s)")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
