"""One-off (issue 29): move the run facts (wall time, threads) out of every output.joblib into its meta.json.

    .venv/bin/python tools/migrate_run_facts.py [--write]

Before issue 29, `experiments.skeleton` kept the training time and the thread count inside the
output (`output["meta"]`), so a bit-identical recompute still changed output.joblib. The store now
moves them to meta.json (`train_time_s`, `threads`: `hw3.store.cached.split_run_facts`). For each
entry whose output holds them, this script:

1. checks the entry is intact: output.joblib's sha256 is the recorded `output_sha256`, and
   joblib.hash of its content is the recorded `output_hash`;
2. writes the output without those two fields, exactly as the store now would, and checks that the
   rewritten file loads back to the old content minus those fields: every other value the same,
   every array with the same dtype, shape and bytes;
3. records `train_time_s` and `threads` in meta.json, with the new `output_sha256` and
   `output_hash`, and updates the upstream output hash that downstream entries recorded for it.

Nothing else changes: not the code fingerprint, not the config, not any other field. Without
--write it only checks and reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from hw3.environment import cache_dir
from hw3.store import fingerprint, safeload
from hw3.store.cached import META, OUTPUT, split_run_facts


def same(a: Any, b: Any, where: str = "output") -> list[str]:
    """Where `a` and `b` differ: types, keys, values; arrays by dtype, shape and bytes."""
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"]
        if a.dtype.hasobject:
            return [d for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())) for d in same(x, y, f"{where}[{i}]")]
        return [] if a.tobytes() == b.tobytes() else [f"{where}: array bytes differ"]
    if isinstance(a, dict):
        if list(a) != list(b):
            return [f"{where}: keys {list(a)} vs {list(b)}"]
        return [d for k in a for d in same(a[k], b[k], f"{where}[{k!r}]")]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and np.isnan(a) and np.isnan(b):
        return []
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def migrate(root: Path, write: bool) -> int:
    folders = sorted(p.parent for p in root.glob(f"*/*/{META}"))
    metas = {f: json.loads((f / META).read_text()) for f in folders}
    renamed: dict[str, str] = {}  # old output_hash → new
    pending: list[tuple[Path, Path]] = []
    problems = 0
    for folder, meta in metas.items():
        old = safeload.load(folder / OUTPUT)
        if fingerprint.file_sha256(folder / OUTPUT) != meta.get("output_sha256") or joblib.hash(old) != meta.get("output_hash"):
            print(f"SKIP {folder.name}: not intact (its bytes or content differ from what meta.json recorded)")
            problems += 1
            continue
        new, facts = split_run_facts(old)
        if not facts:
            print(f"ok   {folder.name}: holds no run facts")
            continue
        tmp = folder / f".{OUTPUT}.migrating"
        joblib.dump(new, tmp)
        back = safeload.load(tmp)
        expected = {**old, "meta": {k: v for k, v in old["meta"].items() if k not in facts}}
        differences = same(expected, back)
        if differences or joblib.hash(back) != joblib.hash(new):
            print(f"FAIL {folder.name}: the rewritten output differs: {differences[:3]}")
            tmp.unlink()
            problems += 1
            continue
        renamed[meta["output_hash"]] = joblib.hash(new)
        if "wall_time_s" in facts:  # the names the store now writes (run_facts_for_meta), nothing invented
            meta["train_time_s"] = facts["wall_time_s"]
        if "threads" in facts:
            meta["threads"] = facts["threads"]
        meta["output_sha256"], meta["output_hash"] = fingerprint.file_sha256(tmp), renamed[meta["output_hash"]]
        pending.append((folder, tmp))
        print(f"move {folder.name}: {sorted(facts)} → meta.json (train_time_s {facts.get('wall_time_s', 0):.1f} s)")
    for folder, meta in metas.items():  # downstream entries name their upstream outputs by hash
        for up in meta["upstream"].values():
            if up["output"] in renamed:
                up["output"] = renamed[up["output"]]
                if not any(f == folder for f, _ in pending):
                    pending.append((folder, None))
    if problems:
        print(f"{problems} problem(s): nothing written")
        for _, tmp in pending:
            if tmp is not None:
                tmp.unlink()
        return 2
    for folder, tmp in pending:
        if write:
            if tmp is not None:
                os.replace(tmp, folder / OUTPUT)
            (folder / META).write_text(json.dumps(metas[folder], indent=1, sort_keys=True) + "\n")
        elif tmp is not None:
            tmp.unlink()
    print(f"{len(pending)} entries {'rewritten' if write else 'would be rewritten (pass --write)'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    sys.exit(migrate(cache_dir(), parser.parse_args().write))
