"""`python -m hw3 ...`: list, run and summarise the cached experiments, and fetch the datasets.

    python -m hw3 results [--json]     table of every experiment and its headline metrics
    python -m hw3 run [NAME ...]       compute what is missing (all by default), in parallel
    python -m hw3 download             fetch FashionMNIST and MNIST with torchvision (needs internet)
"""

from __future__ import annotations

import argparse
import json
import sys

from . import registry
from .cache import CacheMissError
from .data import DataError


def _headline(result: dict) -> dict:
    final = result.get("final", {})
    if "test" in result:  # bonus-final: the one test evaluation, beside the validation score it was chosen on
        final = {"val": {"acc": result.get("val_acc"), "loss": None}, "test": result["test"]}
    row = {}
    for split in ("val", "test"):
        metrics = final.get(split, {})
        key = "acc_all" if "acc_all" in metrics else "acc"
        if key in metrics:
            row[f"{split}_acc"] = metrics[key]
            row[f"{split}_loss"] = metrics["loss"]
    meta = result.get("meta", {})
    row.update(wall_time_s=meta.get("wall_time_s"), device=meta.get("device_type"))
    return row


def cmd_results(args) -> int:
    rows = []
    for name, (func, config) in registry.by_name().items():
        row = {"name": name, "status": func.status(config)}
        if row["status"] == "cached":
            try:
                row.update(_headline(func.load_cached(config)))
            except CacheMissError as exc:
                row["status"] = f"unreadable: {exc}"
        rows.append(row)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'experiment':34} {'status':8} {'val acc':>8} {'test acc':>8} {'test loss':>10} {'wall s':>8}  device")
    for r in rows:
        def fmt(key: str, spec: str, row: dict = r) -> str:
            width = int(spec.split(".")[0])
            return format(row[key], spec) if row.get(key) is not None else "-".rjust(width)

        print(f"{r['name']:34} {r['status'][:8]:8} {fmt('val_acc', '8.2%')} {fmt('test_acc', '8.2%')} "
              f"{fmt('test_loss', '10.4f')} {fmt('wall_time_s', '8.0f')}  {r.get('device') or '-'}")
    missing = [r["name"] for r in rows if r["status"] != "cached"]
    if missing:
        print(f"\n{len(missing)} not cached: run `make results` (or `python -m hw3 run NAME`).")
    return 0


def cmd_run(args) -> int:
    from .runner import run_missing

    names = args.names or list(registry.by_name())
    for n in names:
        registry.lookup(n)  # fail on a typo before starting anything
    if args.force:
        for n in names:
            func, config = registry.lookup(n)
            func.clear(config)
    return run_missing(names, jobs=args.jobs, device=args.device)


def cmd_download(args) -> int:
    from .data import DATASETS, download

    for name in DATASETS:
        print(f"{name}: {download(name)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw3", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("results", help="table of every cached experiment")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_results)
    p = sub.add_parser("run", help="compute missing experiments")
    p.add_argument("names", nargs="*", help="experiment names (default: all)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core, at most one per experiment)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    p.add_argument("--force", action="store_true", help="recompute even if cached")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("download", help="fetch the datasets with torchvision")
    p.set_defaults(func=cmd_download)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `python -m hw3 results | head`
        sys.stderr.close()
        return 0
    except (CacheMissError, DataError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
