"""`python -m hw3 ...`: list, run and summarise the cached experiments, tidy the cache, fetch the datasets.

    python -m hw3 results [--json]          every experiment: status (and why), headline metrics
    python -m hw3 run [NAME ...] [--force]  compute what is stale or missing (all by default), in dependency order,
                      [--yes]               after saying what and how long; --yes: no question (bf16 on a CPU without bf16 units)
                      [--dry-run]           ... or only say what and how long
                      [--threads N]         torch threads per worker
                      [--scheduler ADDR]    ... on a Dask distributed cluster instead of local processes
    python -m hw3 gc [--delete [--yes]]     list (or, after asking, remove) cache entries no experiment uses
    python -m hw3 download                  fetch FashionMNIST and MNIST with torchvision (needs internet)

Exit status: 0 on success, 2 on a usage or data error (unknown name, missing dataset, stale cache,
a confirmation needed without a terminal, a run that failed), 1 when a question is answered no,
130 when interrupted (Ctrl-C). Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from hw3 import environment
from hw3.experiments import registry
from hw3.report import record
from hw3.store import cached, tidy, untrusted
from hw3.nn.data import DataError
from hw3.store.cached import CacheMissError, StoreError


def _headline(result) -> dict:
    """Validation and test accuracy (both digits right, for MultiMNIST) and loss of a trained run; the
    mean test accuracy of the bonus's final models; nothing for the other analyses."""
    row = {}
    if isinstance(result, record.Run):
        for split in ("val", "test"):
            if split in result.evaluations:
                row[f"{split}_acc"], row[f"{split}_loss"] = result.on(split).acc, result.on(split).loss
        row["wall_time_s"] = result.meta.wall_time_s  # the training loop's time, from meta.json
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
            print(f"    {r['status']}: {untrusted.terminal(reason)}")  # reasons quote meta.json: no escape codes
    notes = sorted({n for r in rows for n in r["notes"]})
    for note in notes:
        print(f"note (not stale): {untrusted.terminal(note)}")
    pending = [r["name"] for r in rows if r["status"] != "cached"]
    if pending:
        print(f"\n{len(pending)} stale or missing: run `make results` (or `python -m hw3 run NAME`).")
    return 0


def cmd_run(args) -> int:
    from hw3.compute.runner import check_options, restore_interrupted, run_missing

    # Every option, name and flag is checked before the plan, whose status and calibration take seconds.
    check_options(jobs=args.jobs, device=args.device, threads=args.threads)
    environment.assume_yes()
    runs = [registry.lookup(n) for n in args.names] if args.names else registry.all_experiments()  # a typo fails here
    if not args.dry_run:
        restore_interrupted(runs)  # an interrupted write is put back, not recomputed
    if not _confirm_plan(runs, args):
        print("Nothing computed.")
        return 1
    if args.dry_run:
        return 0
    return run_missing(runs, jobs=args.jobs, device=args.device, scheduler=args.scheduler, force=args.force,
                       threads=args.threads)


def _confirm_plan(runs, args) -> bool:
    """Say what will be computed and the time it should take here; ask before emulated bf16 (hw3.estimate)."""
    from hw3.compute.estimate import confirm
    from hw3.compute.plan import to_compute

    return confirm(to_compute(runs, args.force), jobs=args.jobs, device=args.device, scheduler=args.scheduler, yes=args.yes,
                   threads=args.threads, dry_run=args.dry_run)


def cmd_gc(args) -> int:
    from hw3.compute.ask import confirmed

    unused = tidy.garbage(registry.all_experiments())
    if not unused:
        print("No unused cache entries.")
        return 0
    for path in unused:
        print(f"unused: {untrusted.terminal(path)}" + (" (a link: only the link is removed)" if path.is_symlink() else ""))
    if not args.delete:
        print(f"\n{len(unused)} unused entries; `python -m hw3 gc --delete` removes them.")
        return 0
    if not confirmed(f"Delete these {len(unused)}?", f"gc --delete would delete {len(unused)} cache entries: pass --yes "
                     "(or set HW3_YES=1) to delete them without a terminal; nothing was deleted", yes=args.yes):
        print("Nothing deleted.")
        return 1
    for path in unused:
        print(f"removing {untrusted.terminal(path)}")
        tidy.delete_garbage(path)
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
    p.add_argument("--dry-run", action="store_true", help="print the plan and the estimate only; compute nothing")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores / workers)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("gc", help="list cache entries no experiment uses (dry run)")
    p.add_argument("--delete", action="store_true", help="remove them, after asking")
    p.add_argument("--yes", action="store_true", help="delete without asking (also HW3_YES=1)")
    p.set_defaults(func=cmd_gc)
    p = sub.add_parser("download", help="fetch the datasets with torchvision")
    p.set_defaults(func=cmd_download)
    args = parser.parse_args(argv)
    try:
        cached.cache_only(), cached.strict_versions()  # a bad flag value fails here, before anything runs
        if args.command != "download":
            tidy.check_cache_dir()
        return args.func(args)
    except BrokenPipeError:  # `python -m hw3 results | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # entries are swapped in whole, so an interrupted run leaves nothing half-written
        print("\ninterrupted: nothing half-written was left; run the command again to go on", file=sys.stderr)
        return 130
    except (CacheMissError, StoreError, DataError, KeyError, ValueError, OSError) as exc:
        if isinstance(exc, KeyError) and exc.args:
            message = exc.args[0]  # KeyError's str() adds quotes
        elif isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            message = f"{exc.strerror or type(exc).__name__}: {exc.filename or exc}"
        else:
            message = exc
        print(f"error: {untrusted.terminal(str(message).splitlines()[0] if str(message) else message)}", file=sys.stderr)
        return 2
