"""Compute missing experiments in parallel worker processes, with progress bars and a timing summary.

On a small CPU, several single-threaded workers beat one multi-threaded process: these nets are
too small for intra-op parallelism to pay (`python -m hw3.bench` measures it). Workers are
joblib/loky processes, so `joblib.parallel_config(backend="dask")` or "ray" moves the same
command onto a cluster.
"""

from __future__ import annotations

import os
import time

from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from . import registry


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _run_one(name: str, device: str | None, threads: int, position: int) -> tuple[str, float]:
    """Worker: run one experiment with its own progress bar; the cache write is atomic."""
    import torch

    from . import experiments

    torch.set_num_threads(threads)
    func, config = registry.lookup(name)
    epochs = getattr(config, "epochs", None)
    bar = tqdm(total=epochs, desc=f"{name:32}", position=position, leave=False, unit="epoch")

    def progress(epoch: int, record: dict) -> None:
        val = record.get("val", {})
        acc = val.get("acc_all", val.get("acc"))
        bar.update(1)
        if acc is not None:
            bar.set_postfix(val_acc=f"{acc:.3f}")

    experiments.configure(device=device, progress=progress)
    started = time.perf_counter()
    try:
        func(config)
    finally:
        bar.close()
    return name, time.perf_counter() - started


def _status(name: str) -> str:
    func, config = registry.lookup(name)
    return func.status(config)


def run_missing(names: list[str], jobs: int | None = None, device: str | None = None) -> int:
    """Run every experiment of `names` that is not cached; print wall times at the end."""
    todo = [n for n in names if _status(n) != "cached"]
    if not todo:
        print(f"All {len(names)} experiments are cached; nothing to compute.")
        return 0
    on_gpu = (device or "auto").startswith("cuda") or (device in (None, "auto") and _cuda_available())
    # One GPU is best fed by one process; on CPU, one single-threaded worker per core.
    jobs = jobs or (1 if on_gpu else min(_cores(), len(todo)))
    threads = max(1, _cores() // jobs)
    print(f"Computing {len(todo)} of {len(names)} experiments with {jobs} worker(s) × {threads} thread(s): {', '.join(todo)}")
    started = time.perf_counter()
    times: dict[str, float] = {}
    overall = tqdm(total=len(todo), desc="experiments", position=0, unit="exp")
    # Two stages: experiments that read other cached results wait until those exist. Within a
    # stage, the longest runs go first so that no worker is left alone with a long one at the end.
    by_cost = sorted(todo, key=registry.expected_cost, reverse=True)
    for stage in ([n for n in by_cost if n not in registry.DEPENDENT], [n for n in by_cost if n in registry.DEPENDENT]):
        calls = (delayed(_run_one)(n, device, threads, 1 + i % jobs) for i, n in enumerate(stage))
        with parallel_config(backend="loky", inner_max_num_threads=threads):
            for name, seconds in Parallel(n_jobs=min(jobs, max(1, len(stage))), return_as="generator_unordered")(calls):
                times[name] = seconds
                overall.update(1)
                overall.write(f"done {name} in {seconds:.0f} s")
    overall.close()
    total = time.perf_counter() - started
    print("\nWall time per experiment:")
    for name in todo:
        print(f"  {name:34} {times[name]:8.1f} s")
    print(f"  {'total (wall clock)':34} {total:8.1f} s   (sum of runs {sum(times.values()):.1f} s)")
    return 0


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
