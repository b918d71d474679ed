"""One-off: re-stamp the committed cache under the fingerprint rules of issue 19, without recomputing.

    PYTHONPATH=code python tools/migrate_store.py BASE_COMMIT [--write]

An entry is re-stamped only when all of these hold, and is listed otherwise (it must be recomputed):
1. Under the *old* rules, at BASE_COMMIT's code (the code before this change), it is current: its
   stored fingerprint matches (checked by BASE_COMMIT's own store, in a child process).
2. The module-level statements of every module it reaches, which the old rules did not see, are the
   same in the code it was computed with as in BASE_COMMIT: compared (as ASTs) at the commit that
   committed its meta.json and at the last commit before its `finished_at`.
3. Its output.joblib still holds what was written: joblib.hash of the loaded output equals the
   recorded `output_hash`.
Then its `code` and `constants` are replaced by the new rules' fingerprint of today's code, and the
sha256 of output.joblib's bytes is recorded. output.joblib is never touched.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OLD_STATUS = """
import json
from hw3.experiments import registry
print(json.dumps({e.name(c): [e.status(c).state, e.status(c).reasons] for e, c in registry.all_experiments()}))
"""


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def old_statuses(base: str) -> dict[str, list]:
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", base, "code"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HW3_")}
        env.update(PYTHONPATH=str(Path(tmp) / "code"), HW3_CACHE_ONLY="1", HW3_CACHE_DIR=str(ROOT / "cache"),
                   HW3_DATA_DIR=os.environ.get("HW3_DATA_DIR", ""))
        proc = subprocess.run([sys.executable, "-c", OLD_STATUS], env=env, capture_output=True, text=True, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def module_level(source: str, module: str) -> tuple[dict, list[str]]:
    """What the old rules did not see of a module's top level: (imports by bound name, other statements).

    Left out: defs and classes (the old rules hashed them), and pure bindings of data (`FASHION = ...`),
    whose value the old rules hashed wherever it was read (and which, being pure, do nothing else).
    """
    from hw3.store import fingerprint

    namespace = vars(sys.modules[module])
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    imports, others = {}, []
    for s in body:
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            for a in s.names:
                imports[a.asname or a.name] = (getattr(s, "module", None), getattr(s, "level", 0), a.name)
        elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        elif (isinstance(s, (ast.Assign, ast.AnnAssign)) and s.value is not None
              and isinstance(target := (s.targets[0] if isinstance(s, ast.Assign) and len(s.targets) == 1 else getattr(s, "target", None)), ast.Name)
              and not callable(namespace.get(target.id)) and fingerprint._is_pure(s.value, namespace, "hw3")):
            continue
        else:
            others.append(ast.dump(s))
    return imports, others


def file_at(commit: str, path: str) -> str | None:
    try:
        return git("show", f"{commit}:{path}")
    except subprocess.CalledProcessError:
        return None


def module_level_unchanged(meta_path: Path, meta: dict, base: str) -> list[str]:
    """Modules whose module-level statements differ between the entry's code and `base` (empty: fine)."""
    rel = str(meta_path.relative_to(ROOT))
    committed = git("log", "-1", "--format=%H", "--", rel).strip()
    before = git("rev-list", "-1", f"--before={meta['finished_at']} +0000", base).strip()
    modules = sorted({k.split(":")[0] for k in [*meta["code"], *meta["constants"]]})
    changed = []
    for module in modules:
        path = "code/" + module.replace(".", "/") + ".py"
        now_imports, now_others = module_level(file_at(base, path), module)
        for commit in (committed, before):
            source = file_at(commit, path)
            if source is None:
                changed.append(f"{module} (absent at {commit[:7]})")
                continue
            imports, others = module_level(source, module)
            # A name the entry's code imported must be bound to the same thing; names imported since are new.
            if others != now_others or any(now_imports.get(k) != v for k, v in imports.items()):
                changed.append(f"{module} (at {commit[:7]})")
    return changed


def main(base: str, write: bool) -> int:
    import joblib

    from hw3.store import fingerprint, cached
    from hw3.experiments import registry

    old = old_statuses(base)
    restamped, refused = [], []
    for exp, config in registry.all_experiments():
        name = exp.name(config)
        folder = exp.folder(config)
        meta_path = folder / cached.META
        meta = json.loads(meta_path.read_text())
        problems = []
        if old.get(name, ["missing"])[0] != "cached":
            problems.append(f"not current under the old rules at {base[:7]}: {old.get(name)}")
        problems += [f"module-level code changed: {m}" for m in module_level_unchanged(meta_path, meta, base)]
        if joblib.hash(joblib.load(folder / cached.OUTPUT)) != meta["output_hash"]:
            problems.append("output.joblib does not hold the recorded output")
        if problems:
            refused.append((name, problems))
            continue
        meta["code"], meta["constants"] = exp.code_fingerprint(config)
        meta["output_sha256"] = fingerprint.file_sha256(folder / cached.OUTPUT)
        if write:
            meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        restamped.append(name)
    print(f"re-stamped {len(restamped)} entries{'' if write else ' (dry run)'}: {', '.join(restamped)}")
    for name, problems in refused:
        print(f"NOT migrated (recompute): {name}: {'; '.join(problems)}")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--write" in sys.argv[2:]))
