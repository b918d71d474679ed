"""`python -m hw3 ...`: list, run and summarise the cached experiments, tidy the cache, fetch the datasets.

    python -m hw3 results [--json]          every experiment: status (and why), headline metrics
    python -m hw3 run [NAME ...] [--force]  compute what is stale or missing (all by default), in dependency order,
                      [--yes]               after saying what and how long; --yes: no question (bf16 on a CPU without bf16 units)
                      [--scheduler ADDR]    ... on a Dask distributed cluster instead of local processes
    python -m hw3 gc [--delete]             list (or remove) cache entries no experiment uses
    python -m hw3 download                  fetch FashionMNIST and MNIST with torchvision (needs internet)

Exit status: 0 on success, 2 on a usage or data error (unknown name, missing dataset, stale cache,
a confirmation needed without a terminal), 1 when the question before a recompute is answered no.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from hw3.experiments import registry
from hw3.report import record
from hw3.store import cached
from hw3.nn.data import DataError
from hw3.store.cached import CacheMissError, StoreError, garbage


def _headline(result) -> dict:
    """Validation and test accuracy (both digits right, for MultiMNIST) and loss of a trained run; the
    mean test accuracy of the bonus's final models; nothing for the other analyses."""
    row = {}
    if isinstance(result, record.Run):
        for split in ("val", "test"):
            if split in result.evaluations:
                row[f"{split}_acc"], row[f"{split}_loss"] = result.on(split).acc, result.on(split).loss
        row["wall_time_s"] = result.meta.wall_time_s
    elif isinstance(result, record.FinalTest):
        row["test_acc"] = sum(t.acc for t in result.tests) / len(result.tests)
    return row


def status_rows() -> list[dict]:
    rows = []
    for name, (exp, config) in registry.by_name().items():
        st = exp.status(config)
        row = {"name": name, "status": st.state, "reasons": st.reasons, "notes": st.notes}
        if st.state == "cached":
            try:
                row.update(_headline(record.as_record(exp, config, exp.load_entry(config))))
            except CacheMissError as exc:
                row.update(status="unreadable", reasons=[str(exc)])
            except Exception as exc:  # an output of an unexpected shape: this row says so, the listing goes on
                row.update(status="unreadable", reasons=[f"its output has an unexpected shape ({type(exc).__name__}: {exc})"])
        rows.append(row)
    return rows


def cmd_results(args) -> int:
    rows = status_rows()
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'experiment':60} {'status':8} {'val acc':>8} {'test acc':>8} {'wall s':>7}")
    for r in rows:
        def fmt(key: str, spec: str, row: dict = r) -> str:
            return format(row[key], spec) if row.get(key) is not None else "-".rjust(int(spec.split(".")[0]))

        print(f"{r['name']:60} {r['status']:8} {fmt('val_acc', '8.2%')} {fmt('test_acc', '8.2%')} {fmt('wall_time_s', '7.0f')}")
        for reason in r["reasons"] if r["status"] != "missing" else []:
            print(f"    {r['status']}: {reason}")
    notes = sorted({n for r in rows for n in r["notes"]})
    for note in notes:
        print(f"note (not stale): {note}")
    pending = [r["name"] for r in rows if r["status"] != "cached"]
    if pending:
        print(f"\n{len(pending)} stale or missing: run `make results` (or `python -m hw3 run NAME`).")
    return 0


def cmd_run(args) -> int:
    from hw3.compute.runner import run_missing

    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    runs = [registry.lookup(n) for n in args.names] if args.names else registry.all_experiments()  # a typo fails here
    if not _confirm_plan(runs, args):
        print("Nothing computed.")
        return 1
    return run_missing(runs, jobs=args.jobs, device=args.device, scheduler=args.scheduler, force=args.force)


def _confirm_plan(runs, args) -> bool:
    """Say what will be computed and the time it should take here; ask before emulated bf16 (hw3.estimate)."""
    from hw3.compute.estimate import confirm
    from hw3.compute.plan import to_compute

    return confirm(to_compute(runs, args.force), jobs=args.jobs, device=args.device, scheduler=args.scheduler, yes=args.yes)


def cmd_gc(args) -> int:
    unused = garbage(registry.all_experiments())
    if not unused:
        print("No unused cache entries.")
        return 0
    for path in unused:
        print(("removing " if args.delete else "unused: ") + str(path))
        if args.delete:
            shutil.rmtree(path)
    if not args.delete:
        print(f"\n{len(unused)} unused entries; `python -m hw3 gc --delete` removes them.")
    return 0


def cmd_download(args) -> int:
    from hw3.nn.data import DATASETS, download

    for name in DATASETS:
        print(f"{name}: {download(name)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw3", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("results", help="every experiment, its status and headline metrics")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_results)
    p = sub.add_parser("run", help="compute stale or missing experiments")
    p.add_argument("names", nargs="*", help="experiment names (default: all)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core, at most one per experiment)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    p.add_argument("--force", action="store_true", help="recompute the named experiments even if current")
    p.add_argument("--scheduler", default=None, help="address of a Dask distributed scheduler to run on")
    p.add_argument("--yes", action="store_true", help="start without asking, even for bf16 runs on a CPU without "
                                                     "bf16 units (also HW3_YES=1)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("gc", help="list cache entries no experiment uses (dry run)")
    p.add_argument("--delete", action="store_true", help="remove them")
    p.set_defaults(func=cmd_gc)
    p = sub.add_parser("download", help="fetch the datasets with torchvision")
    p.set_defaults(func=cmd_download)
    args = parser.parse_args(argv)
    try:
        cached.cache_only(), cached.strict_versions()  # a bad flag value fails here, before anything runs
        return args.func(args)
    except BrokenPipeError:  # `python -m hw3 results | head`
        sys.stderr.close()
        return 0
    except (CacheMissError, StoreError, DataError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError's str() adds quotes
        print(f"error: {message}", file=sys.stderr)
        return 2
