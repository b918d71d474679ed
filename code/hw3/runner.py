"""Compute what is stale or missing, in dependency order: locally in worker processes, or on a Dask cluster.

On a small CPU, several single-threaded workers beat one multi-threaded process: these nets are
too small for intra-op parallelism to pay (`make bench` measures it). Locally the workers are
joblib/loky processes, and the graph runs level by level (an experiment starts once everything it
reads is computed). With `scheduler=ADDRESS` the same graph goes to a Dask distributed cluster as
futures that depend on their upstream futures; the cache folder must be shared by the workers.
"""

from __future__ import annotations

import os
import time

from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from . import registry
from .store import RunSettings


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_one(name: str, device: str | None = None, threads: int | None = None, position: int | None = None, *_upstream) -> tuple[str, float]:
    """Worker: compute one experiment (its upstream must be current) and write its entry atomically.

    `_upstream` only carries the Dask futures this run must wait for; their values are not used.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    exp, config = registry.lookup(name)
    bar = tqdm(total=getattr(config, "epochs", None), desc=f"{name[:40]:40}", position=position, leave=False,
               unit="epoch", disable=position is None)

    def progress(epoch: int, record: dict) -> None:
        val = record.get("val", {})
        acc = val.get("acc_all", val.get("acc"))
        bar.update(1)
        if acc is not None:
            bar.set_postfix(val_acc=f"{acc:.3f}")

    started = time.perf_counter()
    try:
        exp.compute(config, RunSettings(device=device, progress=progress))
    finally:
        bar.close()
    return name, time.perf_counter() - started


def to_compute(names: list[str], force: bool = False) -> list[str]:
    """The runs of `names` that are stale or missing (all of them with `force`), plus what they need
    that is not current and what of `names` reads them, in graph order."""
    todo: list[str] = []

    def visit(name: str) -> None:
        if name in todo:
            return
        for dep in registry.dependencies(name):
            visit(dep)
        exp, config = registry.lookup(name)
        if (force and name in names) or exp.status(config).state != "cached" or any(dep in todo for dep in registry.dependencies(name)):
            todo.append(name)

    for n in names:
        visit(n)
    return todo


def levels(todo: list[str]) -> list[list[str]]:
    """Group `todo` so that each run comes after every run of `todo` it depends on; longest first within a level."""
    depth: dict[str, int] = {}
    for name in todo:  # `todo` is in graph order, so dependencies already have a depth
        depth[name] = 1 + max((depth[d] for d in registry.dependencies(name) if d in depth), default=-1)
    return [sorted((n for n in todo if depth[n] == level), key=registry.expected_cost, reverse=True)
            for level in range(1 + max(depth.values(), default=-1))]


def run_missing(names: list[str], jobs: int | None = None, device: str | None = None, scheduler: str | None = None,
                force: bool = False) -> int:
    """Compute every run of `names` that is not current (or all, with `force`); print wall times at the end."""
    todo = to_compute(names, force)
    if not todo:
        print(f"All {len(names)} experiments are cached and current; nothing to compute.")
        return 0
    started = time.perf_counter()
    if scheduler:
        times = _run_on_dask(todo, scheduler, device)
    else:
        times = _run_locally(todo, jobs, device)
    total = time.perf_counter() - started
    print("\nWall time per experiment:")
    for name in todo:
        print(f"  {name:60} {times[name]:8.1f} s")
    print(f"  {'total (wall clock)':60} {total:8.1f} s   (sum of runs {sum(times.values()):.1f} s)")
    return 0


def _run_locally(todo: list[str], jobs: int | None, device: str | None) -> dict[str, float]:
    on_gpu = (device or "auto").startswith("cuda") or (device in (None, "auto") and _cuda_available())
    # One GPU is best fed by one process; on CPU, one single-threaded worker per core.
    jobs = jobs or (1 if on_gpu else min(_cores(), len(todo)))
    threads = max(1, _cores() // jobs)
    print(f"Computing {len(todo)} experiments with {jobs} worker(s) × {threads} thread(s): {', '.join(todo)}")
    times: dict[str, float] = {}
    overall = tqdm(total=len(todo), desc="experiments", position=0, unit="exp")
    for level in levels(todo):
        calls = (delayed(run_one)(n, device, threads, 1 + i % jobs) for i, n in enumerate(level))
        with parallel_config(backend="loky", inner_max_num_threads=threads):
            for name, seconds in Parallel(n_jobs=min(jobs, len(level)), return_as="generator_unordered")(calls):
                times[name] = seconds
                overall.update(1)
                overall.write(f"done {name} in {seconds:.0f} s")
    overall.close()
    return times


def _run_on_dask(todo: list[str], scheduler: str, device: str | None) -> dict[str, float]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:
        raise RuntimeError("--scheduler needs Dask: pip install -e '.[dask]'") from exc
    with Client(scheduler) as client:
        print(f"Computing {len(todo)} experiments on the Dask cluster at {scheduler}: {', '.join(todo)}")
        futures = {}
        for name in todo:  # graph order: a run's upstream futures exist before it is submitted
            waits = [futures[d] for d in registry.dependencies(name) if d in futures]
            futures[name] = client.submit(run_one, name, device, None, None, *waits, key=f"hw3-{name}", pure=False)
        return dict(future.result() for future in as_completed(list(futures.values())))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
