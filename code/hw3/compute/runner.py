"""Compute what is stale or missing, in dependency order: locally in worker processes, or on a Dask cluster.

On a small CPU, several single-threaded workers beat one multi-threaded process: these nets are
too small for intra-op parallelism to pay (`make bench` measures it). Locally the workers are
joblib/loky processes, and the graph runs level by level (an experiment starts once everything it
reads is computed). With `scheduler=ADDRESS` the same graph goes to a Dask distributed cluster as
futures that depend on their upstream futures; the cache folder must be shared by the workers.
"""

from __future__ import annotations

import re
import time
from typing import Any

from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from hw3.compute import allocator, estimate, plan
from hw3.experiments.registry import Run
from hw3.experiments.registry import name_of as _name
from hw3.store.cached import Experiment, RunSettings, prepare_folder


def run_one(exp: Experiment, config: Any, device: str | None = None, threads: int | None = None,
            position: int | None = None, *_upstream) -> tuple[str, float]:
    """Worker: compute one experiment (its upstream must be current) and write its entry atomically.

    `_upstream` only carries the Dask futures this run must wait for; their values are not used.
    """
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
    return name, seconds


def run_missing(runs: list[Run], jobs: int | None = None, device: str | None = None, scheduler: str | None = None,
                force: bool = False) -> int:
    """Compute every run that is not current (or all of `runs`, with `force`); print wall times at the end."""
    check_device(device)  # before anything is computed, for every experiment (some never touch a device)
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    todo = plan.to_compute(runs, force)
    if not todo:
        print(f"All {len(runs)} experiments are cached and current; nothing to compute.")
        return 0
    for exp, config in todo:  # an unwritable cache or a stale temporary fails now, not after hours of computing
        prepare_folder(exp.folder(config))
    started = time.perf_counter()
    times = _run_on_dask(todo, scheduler, device) if scheduler else _run_locally(todo, jobs, device)
    total = time.perf_counter() - started
    print("\nWall time per experiment:")
    for run in todo:
        print(f"  {_name(run):60} {times[_name(run)]:8.1f} s")
    print(f"  {'total (wall clock)':60} {total:8.1f} s   (sum of runs {sum(times.values()):.1f} s)")
    return 0


def _run_locally(todo: list[Run], jobs: int | None, device: str | None) -> dict[str, float]:
    on_gpu = (device or "auto").startswith("cuda") or (device in (None, "auto") and _cuda_available())
    # One GPU is best fed by one process; on CPU, one single-threaded worker per core.
    jobs = jobs or (1 if on_gpu else min(plan.cores(), len(todo)))
    threads = max(1, plan.cores() // jobs)
    print(f"Computing {len(todo)} experiments with {jobs} worker(s) × {threads} thread(s): {', '.join(map(_name, todo))}")
    times: dict[str, float] = {}
    overall = tqdm(total=len(todo), desc="experiments", position=0, unit="exp")
    for level in plan.levels(todo):
        calls = (delayed(run_one)(exp, config, device, threads, 1 + i % jobs) for i, (exp, config) in enumerate(level))
        with parallel_config(backend="loky", inner_max_num_threads=threads):
            for name, seconds in Parallel(n_jobs=min(jobs, len(level)), return_as="generator_unordered")(calls):
                times[name] = seconds
                overall.update(1)
                overall.write(f"done {name} in {seconds:.0f} s")
    overall.close()
    return times


def _run_on_dask(todo: list[Run], scheduler: str, device: str | None) -> dict[str, float]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:
        raise RuntimeError("--scheduler needs Dask: pip install -e '.[dask]'") from exc
    with Client(scheduler) as client:
        print(f"Computing {len(todo)} experiments on the Dask cluster at {scheduler}: {', '.join(map(_name, todo))}")
        futures = {}
        for exp, config in todo:  # dependency order: a run's upstream futures exist before it is submitted
            waits = [futures[n] for n in plan.upstream_names((exp, config)) if n in futures]
            futures[exp.name(config)] = client.submit(run_one, exp, config, device, None, None, *waits,
                                                      key=f"hw3-{exp.name(config)}", pure=False)
        return dict(future.result() for future in as_completed(list(futures.values())))


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
