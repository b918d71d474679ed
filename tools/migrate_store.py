"""Re-stamp cache entries under today's fingerprint rules without recomputing them (issue 29; re-runnable).

    PYTHONPATH=code python tools/migrate_store.py BASE [BASE ...] [--write]

BASE: the commits whose code the entries may have been computed with under the old rules (for issue 29:
38c00bc, and the head commit of every branch merged since whose cache entries were stamped by the old
store). Run from the repository root, with HW3_DATA_DIR set so the data files are checked too.

An entry already current under today's rules is left alone. Any other is re-stamped only when all of
these hold for one BASE, and is listed otherwise (it must be recomputed):
1. Its output.joblib holds the bytes recorded in its meta.json (`output_sha256`).
2. At BASE, with BASE's own store, it is current (`cached`): its stored old fingerprint matches BASE's
   code, so its output is what BASE's code computes (a child process on `git archive BASE code`).
3. Today's code computes the same as BASE's code for it: today's store, run over BASE's code (BASE's tree
   with today's `hw3/store/`, `hw3/__init__.py` and `hw3/environment.py`, which decide how results are
   kept, not what they are, and today's `counted_if_run` markers), gives the same
   fingerprint as it gives today's code. Today's rules identify definitions by content, so a rename or a
   move with its callers (say `train.fit(...)` → `fit(...)`) passes; any change in what runs does not.
Then its `code`, `code_local` and `constants` become today's fingerprint, `ran` is empty (nothing was
recorded while it ran: the static walk covers it as it did when it was computed), and `migrated_from`
names BASE. output.joblib is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OLD_STATUS = """
import json
from hw3.experiments import registry
print(json.dumps({e.name(c): e.status(c).state for e, c in registry.all_experiments()}))
"""

NEW_FINGERPRINTS = """
import json, sys
from hw3.store import fingerprint
fingerprint.COUNTED_IF_RUN.update(json.loads(sys.argv[1]))
from hw3.experiments import registry
print(json.dumps({e.name(c): e.code_fingerprint(c) for e, c in registry.all_experiments()}))
"""


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def checkout(base: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", base, "code"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "code"


def child(code: Path, script: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HW3_")}
    env.update(PYTHONPATH=str(code), HW3_CACHE_ONLY="1", HW3_CACHE_DIR=str(ROOT / "cache"),
               HW3_DATA_DIR=os.environ.get("HW3_DATA_DIR", ""))
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, cwd=code)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def marked_today() -> list[str]:
    """'module:name' of today's `counted_if_run` functions."""
    out = []
    for name, module in sorted(sys.modules.items()):
        if name.split(".")[0] == "hw3":
            out += [f"{name}:{k}" for k, v in vars(module).items()
                    if getattr(v, "__fingerprint_counted_if_run__", False) and getattr(v, "__module__", None) == name]
    return out


def at_base(base: str, markers: list[str]) -> tuple[dict, dict]:
    """({name: old state} by BASE's store, {name: [code, constants]} by today's store over BASE's code)."""
    with tempfile.TemporaryDirectory() as tmp:
        old = child(checkout(base, Path(tmp) / "old"), OLD_STATUS)
        code = checkout(base, Path(tmp) / "overlay")
        shutil.rmtree(code / "hw3" / "store")
        shutil.copytree(ROOT / "code" / "hw3" / "store", code / "hw3" / "store", ignore=shutil.ignore_patterns("__pycache__"))
        for exempt in ("__init__.py", "environment.py"):  # what today's store needs beside it (neither is reached code)
            shutil.copy(ROOT / "code" / "hw3" / exempt, code / "hw3" / exempt)
        try:
            new = child(code, NEW_FINGERPRINTS, json.dumps(markers))
        except RuntimeError as exc:
            print(f"{base}: today's store cannot fingerprint its code ({exc}): no entry migrates from it")
            new = {}
    return old, new


def same(a: list, b: list) -> bool:
    return all(Counter(x.values()) == Counter(y.values()) for x, y in zip(a, b))


def main(bases: list[str], write: bool) -> int:
    from hw3.store import cached, fingerprint
    from hw3.experiments import registry

    runs = registry.all_experiments()
    markers = marked_today()
    todo = [(e, c) for e, c in runs if e.status(c).state != "cached"]
    print(f"{len(runs) - len(todo)} entries already current; checking {len(todo)} against {', '.join(bases)}")
    found = {base: at_base(base, markers) for base in bases} if todo else {}
    restamped, refused = [], []
    for exp, config in todo:
        name = exp.name(config)
        folder = exp.folder(config)
        meta_path = folder / cached.META
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            refused.append((name, [f"no readable meta.json ({exc})"]))
            continue
        if fingerprint.file_sha256(folder / cached.OUTPUT) != meta.get("output_sha256"):
            refused.append((name, ["output.joblib does not hold the recorded bytes"]))
            continue
        today = list(exp.code_fingerprint(config))
        problems, base_ok = [], None
        for base, (old, new) in found.items():
            if old.get(name) != "cached":
                problems.append(f"{base}: not current there under the old rules ({old.get(name, 'not registered')})")
            elif name not in new or not same(new[name], today):
                problems.append(f"{base}: today's code reaches different code than {base}'s for it")
            else:
                base_ok = base
                break
        if base_ok is None:
            refused.append((name, problems))
            continue
        fp = exp.fingerprint_details(config)
        meta.update(code=fp.code, code_local=fp.local, constants=fp.constants, ran=[], migrated_from=base_ok)
        if write:
            meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        restamped.append(name)
    print(f"re-stamped {len(restamped)} entries{'' if write else ' (dry run: add --write)'}: {', '.join(restamped)}")
    for name, problems in refused:
        print(f"NOT migrated (recompute it): {name}: {'; '.join(problems)}")
    return 1 if refused else 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--write"]
    if not args:
        sys.exit(__doc__)
    sys.exit(main([git("rev-parse", "--short", a).strip() for a in args], "--write" in sys.argv[1:]))
