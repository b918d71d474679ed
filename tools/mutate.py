"""`make mutate`: mutation testing (mutmut) of the engine and the experiment logic, with one worker.

mutmut names a module after its path and only knows the `src/` layout, while our package lives in
`code/hw3/`. So this stages a copy of the tree in `.mutate/` (package under `src/hw3/`, the tests,
pyproject.toml), runs `mutmut run` there on the functions listed in pyproject.toml
(`[tool.hw3-mutate] functions`, fnmatch patterns over mutmut's mutant names), and prints the score
and every surviving mutant. The working tree is never modified. Configuration: `[tool.mutmut]`.

    python tools/mutate.py            # stage afresh, run, summarise
    python tools/mutate.py --resume   # keep .mutate/ (mutmut skips mutants already tested)
    python tools/mutate.py --summary  # only summarise the last run
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".mutate"


def patterns() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["hw3-mutate"]["functions"]


def mutmut() -> str:
    exe = Path(sys.executable).with_name("mutmut")  # `python -m mutmut` is discouraged by mutmut itself
    return str(exe) if exe.exists() else "mutmut"


def stage() -> None:
    shutil.rmtree(STAGE, ignore_errors=True)
    (STAGE / "src").mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "code" / "hw3", STAGE / "src" / "hw3", ignore=ignore)
    shutil.copytree(ROOT / "tests", STAGE / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", STAGE / "pyproject.toml")
    for path in (STAGE / "src" / "hw3").rglob("*.py"):
        undecorate(path)


DECORATED = re.compile(r"^@torch\.inference_mode\(\)\n(?=def (\w+)\()", flags=re.MULTILINE)


def undecorate(path: Path) -> None:
    """mutmut skips decorated functions, and evaluate carries @torch.inference_mode(). In the staged
    copy only, apply that decorator after the module body instead (same behaviour), so their bodies are mutated."""
    text = path.read_text()
    names = [m[1] for m in DECORATED.finditer(text)]
    if names:
        text = DECORATED.sub("", text) + "\n\n# staged by tools/mutate.py: the decorators, applied after the module body\n"
        text += "".join(f"{name} = torch.inference_mode()({name})\n" for name in names)
        path.write_text(text)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # one worker, one thread: the machine is shared
    env.setdefault("MKL_NUM_THREADS", "1")
    shared = ROOT.parent / "shared" / "data"
    if not env.get("HW3_DATA_DIR") and shared.is_dir():
        env["HW3_DATA_DIR"] = str(shared)  # conftest would look beside .mutate/, not beside the repository
    return env


def summary() -> int:
    out = subprocess.run([mutmut(), "results", "--all", "true"], cwd=STAGE, env=environment(), capture_output=True, text=True)
    rows = [re.match(r"\s*(\S+): (.+)$", line) for line in out.stdout.splitlines()]
    rows = [(m[1], m[2].strip()) for m in rows if m]
    selected = [(name, status) for name, status in rows if any(fnmatch.fnmatch(name, p) for p in patterns())]
    if not selected:
        print(out.stdout, out.stderr)
        print("no mutants matched [tool.hw3-mutate] functions: has `make mutate` run?")
        return 1
    by_function: dict[str, Counter] = defaultdict(Counter)
    for name, status in selected:
        by_function[name.partition("__mutmut_")[0]][status] += 1
    total = Counter(status for _, status in selected)
    tested = sum(n for s, n in total.items() if s not in ("no tests", "not checked", "skipped"))
    killed = total["killed"] + total["timeout"]  # a timeout is a detected mutant
    print(f"\n{'function':60} " + " ".join(f"{s:>10}" for s in ("killed", "timeout", "survived", "no tests", "other")))
    for function, counts in sorted(by_function.items()):
        other = sum(n for s, n in counts.items() if s not in ("killed", "timeout", "survived", "no tests"))
        print(f"{function:60} " + " ".join(f"{counts[s]:>10}" for s in ("killed", "timeout", "survived", "no tests")) + f" {other:>10}")
    print(f"\n{len(selected)} mutants: " + ", ".join(f"{n} {s}" for s, n in total.most_common()))
    if tested:
        print(f"score: {killed}/{tested} = {100 * killed / tested:.1f}% of the tested mutants killed")
    survivors = [name for name, status in selected if status == "survived"]
    if survivors:
        print("\nsurvivors (`cd .mutate && mutmut show NAME` prints the diff):")
        for name in survivors:
            print("   ", name)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resume", action="store_true", help="reuse .mutate/ from the last run")
    parser.add_argument("--summary", action="store_true", help="only print the summary of the last run")
    parser.add_argument("--max-children", type=int, default=1, help="parallel workers (default 1)")
    args = parser.parse_args()
    if args.summary:
        return summary()
    if not args.resume or not STAGE.is_dir():
        stage()
    started = time.perf_counter()
    run = subprocess.run([mutmut(), "run", "--max-children", str(args.max_children), *patterns()], cwd=STAGE, env=environment())
    print(f"\nmutmut run took {time.perf_counter() - started:.0f} s (exit {run.returncode})")
    return summary() or run.returncode


if __name__ == "__main__":
    sys.exit(main())
