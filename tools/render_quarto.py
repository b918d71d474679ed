"""Render with the real Quarto CLI, executing the document once for all its formats, and leave no
process behind.

    python tools/render_quarto.py [report.qmd] [--no-freeze] [quarto render options, e.g. --output-dir DIR --to html]

By default Quarto starts a kernel and executes the document once per format (three times for
html, typst and ipynb). With `--execute-daemon SECONDS` one kernel, kept by a small server that
Quarto starts detached, serves every format of the render. That server outlives `quarto render`
and would serve the next render too, with the modules, environment and in-process memos of the
first; so this script makes it belong to exactly one render:

* a private runtime folder (`XDG_RUNTIME_DIR`, where Quarto keeps the daemon's transport file), so
  `quarto render` can only find the daemon it starts itself, never one left by an earlier render.
  (Quarto's `--execute-daemon-restart` is no substitute: it restarts the kernel before every
  format's execution, so three kernels again.)
* when the render ends, however it ends, the daemon gets Quarto's own `abort` command through that
  transport file and exits, shutting its kernel down; the processes of this render, which alone
  carry the environment variable HW3_RENDER_ID with this render's token, are then waited for, and
  terminated (SIGTERM, then SIGKILL) if any is still there after a grace period. Where /proc cannot
  be read (not Linux), the idle timeout below ends a daemon that the abort did not.

Reusing an execution (Quarto's freezer, guarded). A document of a project (a _quarto.yml above
it; `make report`, the render bench) is executed only when something it reads changed since the
last successful render through this script; otherwise Quarto's freezer serves the stored
execution (its markdown and figures) to all formats, and no kernel starts. `freeze: false` stays in
_quarto.yml, so a plain `quarto render` executes every time; this script passes Quarto's
`--use-freezer` and decides itself whether the freeze may be used:

* before the render it computes the document's *inputs key* (`inputs_key`): the document and
  _quarto.yml, every file of the `hw3` package the kernel imports and every .py file beside the
  document (bytes), every file of the result store (bytes: a stale, corrupt or replaced entry
  changes it), the data files (size, mtime, ctime, inode: large and read-only), the Python
  interpreter, its import path and installed distributions, the HW3_*, PYTHON* and MPL*
  environment variables, and Quarto's version;
* the stamp `.quarto/hw3-freeze/<document>.json`, written after the last successful render, holds
  that key and a hash of the freeze files that render left. Unless both match now, the document's
  freeze is deleted first, so Quarto executes it (one daemon kernel for all formats), and a stale
  or corrupt entry fails the render with its reason, as without a freeze. A freeze that a plain
  `quarto render` overwrote, or that a failed render left, is never reused.
* `--no-freeze` (this script's own option) discards the freeze before the render: everything executes.

The exit status is Quarto's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import find_quarto  # tools/, beside this script

TOKEN_VAR = "HW3_RENDER_ID"
# Seconds the daemon waits for the next format's request before it exits on its own: longer than
# any gap between two formats' executions of one render (pandoc and typst run in between), short
# enough that a daemon whose render was killed outright does not linger long.
IDLE_TIMEOUT_S = 120
GRACE_S = 10.0


def quarto_command(quarto: str, args: list[str]) -> list[str]:
    """`quarto render ARGS` with one daemon kernel for all formats, started fresh, and the freezer
    (used only where `prepare_freeze` left a freeze that matches the inputs)."""
    if not args or args[0].startswith("-"):
        args = ["report.qmd", *args]
    return [quarto, "render", *args, "--execute-daemon", str(IDLE_TIMEOUT_S), "--use-freezer"]


# ------------------------------------------------------------------------------------------------
# The guarded freeze

STAMP_DIR = Path(".quarto") / "hw3-freeze"
# Environment variables that can change what the document's Python computes (HW3_RENDER_ID is per render).
KEY_ENV_PREFIXES = ("HW3_", "PYTHON", "MPL")
KEY_ENV_EXCLUDED = {TOKEN_VAR}

# Run by the kernel's interpreter with the render's environment: what it would import, and from where.
_PYTHON_FACTS = r"""
import importlib.util, json, os, sys
facts = {"version": sys.version, "executable": sys.executable, "path": sys.path}
dists = []
for entry in sys.path:
    try:
        dists += sorted(n for n in os.listdir(entry or ".") if n.endswith((".dist-info", ".egg-info", ".egg-link", ".pth")))
    except OSError:
        pass
facts["distributions"] = dists
spec = importlib.util.find_spec("hw3")
facts["hw3"] = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else None
if facts["hw3"]:
    from hw3 import environment
    facts["cache_dir"], facts["data_dir"] = str(environment.cache_dir()), str(environment.data_dir())
print(json.dumps(facts))
"""


def project_dir(document: Path) -> Path | None:
    """The Quarto project the document belongs to (the nearest folder above it with _quarto.yml)."""
    for folder in document.resolve().parents:
        if (folder / "_quarto.yml").is_file() or (folder / "_quarto.yaml").is_file():
            return folder
    return None


def _files(root: Path, pattern: str = "**/*") -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts)


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()


def _stat_identity(path: Path) -> list[int]:
    st = path.stat()  # ctime cannot be set back by a tool, so an unchanged identity means unchanged bytes
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def inputs_key(document: Path, env: dict[str, str], quarto: str) -> str:
    """A hash of everything the document's execution reads (see the module docstring)."""
    document = document.resolve()
    python = env.get("QUARTO_PYTHON") or sys.executable
    proc = subprocess.run([python, "-c", _PYTHON_FACTS], env=env, capture_output=True, text=True, cwd=document.parent)
    facts = json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr[-2000:]}
    parts: dict[str, object] = {"python": facts}
    version = Path(quarto).resolve().parents[1] / "share" / "version"
    parts["quarto"] = [str(Path(quarto).resolve()), version.read_text() if version.is_file() else None]
    parts["env"] = sorted((k, v) for k, v in env.items() if k.startswith(KEY_ENV_PREFIXES) and k not in KEY_ENV_EXCLUDED)
    project = project_dir(document)
    sources = [document, *(project / name for name in ("_quarto.yml", "_quarto.yaml", "_metadata.yml") if project)]
    sources += _files(document.parent, "*.py")
    for folder in facts.get("hw3") or []:
        sources += _files(Path(folder))
    if facts.get("cache_dir") and Path(facts["cache_dir"]).is_dir():
        sources += _files(Path(facts["cache_dir"]))
    parts["bytes"] = [(str(p), _digest(p)) for p in sources if p.is_file()]
    data = Path(facts["data_dir"]) if facts.get("data_dir") else None
    parts["data"] = [(str(p), _stat_identity(p)) for p in _files(data)] if data and data.is_dir() else None
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def freeze_dir(document: Path, project: Path) -> Path:
    """Where Quarto keeps the document's execution when `freeze: false` (its hidden freezer)."""
    document = document.resolve()
    return project / ".quarto" / "_freeze" / document.parent.relative_to(project) / document.stem


def freeze_hash(folder: Path) -> str | None:
    files = _files(folder)
    if not files:
        return None
    return hashlib.blake2b(json.dumps([(str(p.relative_to(folder)), _digest(p)) for p in files]).encode()).hexdigest()


def _stamp(document: Path, project: Path) -> Path:
    return project / STAMP_DIR / (str(document.resolve().relative_to(project)).replace(os.sep, "__") + ".json")


def prepare_freeze(document: Path, env: dict[str, str], quarto: str, discard: bool = False) -> tuple[str, str] | None:
    """Before a render: delete the document's freeze unless it was left by a successful render of
    these very inputs; return (key, reason it executes or '') for `keep_freeze`, None outside a project."""
    project = project_dir(document)
    if project is None:
        return None
    key = inputs_key(document, env, quarto)
    frozen, stamp = freeze_dir(document, project), _stamp(document, project)
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        recorded = {}
    if discard:
        reason = "--no-freeze"
    elif recorded.get("key") != key:
        reason = "no stored execution" if not recorded else "its inputs changed since the stored execution"
    elif recorded.get("freeze") != freeze_hash(frozen):
        reason = "the stored execution is not the one this script recorded"
    else:
        return key, ""
    shutil.rmtree(frozen, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    return key, reason


def keep_freeze(document: Path, key: str, succeeded: bool) -> None:
    """After a render: record the freeze it leaves (with the key computed before it), or drop it."""
    project = project_dir(document)
    frozen, stamp = freeze_dir(document, project), _stamp(document, project)
    digest = freeze_hash(frozen)
    if succeeded and digest is not None:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"key": key, "freeze": digest}))
    else:  # a failed render's partial freeze must not be thawed
        shutil.rmtree(frozen, ignore_errors=True)
        stamp.unlink(missing_ok=True)


def _document(args: list[str]) -> Path:
    return Path(args[0] if args and not args[0].startswith("-") else "report.qmd")


def marked_processes(token: str, var: str = TOKEN_VAR) -> list[int]:
    """Ids of the running processes (not zombies) whose environment carries var=token (Linux /proc)."""
    needle = f"{var}={token}".encode()
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except (OSError, ValueError):  # gone meanwhile, or not ours to read
            continue
    return [p for p in pids if p != os.getpid() and _alive(p)]


def abort_daemons(runtime: Path) -> int:
    """Send Quarto's `abort` command to every daemon whose transport file is in `runtime`; how many."""
    sent = 0
    for transport in runtime.glob("**/jt/*"):  # XDG_RUNTIME_DIR/jt (XDG_RUNTIME_DIR is taken as Quarto's own folder)
        try:
            info = json.loads(transport.read_text())
            with socket.create_connection(("localhost", int(info["port"])), timeout=5) as conn:
                conn.sendall((json.dumps({"command": "abort", "secret": info["secret"], "options": {}}) + "\n").encode())
            sent += 1
        except (OSError, ValueError, KeyError):
            continue  # no daemon behind it any more
    return sent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stop(token: str, runtime: Path, grace: float = GRACE_S) -> list[int]:
    """End this render's daemon and kernel; return the ids that had to be signalled (none if it exited cleanly)."""
    abort_daemons(runtime)
    if not Path("/proc/self/environ").exists():
        return []
    deadline = time.monotonic() + grace
    while (left := marked_processes(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    signalled = list(left)
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 1.0)):
        for pid in left:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while (left := [p for p in left if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.1)
    return signalled


def render(args: list[str], env: dict[str, str] | None = None) -> int:
    found = find_quarto.locate(env)  # $QUARTO (what `make report` passes), else PATH, else .venv's quarto-cli
    if found is None:
        print(f"render_quarto: {find_quarto.HOW_TO_GET}", file=sys.stderr)
        return 2
    quarto = str(found)
    env = dict(os.environ if env is None else env)
    discard = "--no-freeze" in args
    args = [a for a in args if a != "--no-freeze"]
    document = _document(args)
    freeze = prepare_freeze(document, env, quarto, discard) if document.is_file() else None
    if freeze and freeze[1]:
        print(f"render_quarto: executing {document.name} ({freeze[1]})", file=sys.stderr, flush=True)
    elif freeze:
        print(f"render_quarto: {document.name}'s inputs are unchanged: its stored execution is reused", file=sys.stderr, flush=True)
    token = env[TOKEN_VAR] = uuid.uuid4().hex  # new for every render, whatever the caller's environment holds
    runtime = Path(tempfile.mkdtemp(prefix="hw3-quarto-runtime-"))
    env["XDG_RUNTIME_DIR"] = str(runtime)
    rc = 1
    try:
        rc = subprocess.run(quarto_command(quarto, args), env=env).returncode
        return rc
    except KeyboardInterrupt:
        return 130
    finally:
        if freeze:
            keep_freeze(document, freeze[0], rc == 0)
        signalled = stop(token, runtime)
        if signalled:
            print(f"render_quarto: the Jupyter daemon did not exit on abort; signalled processes {signalled}", file=sys.stderr)
        shutil.rmtree(runtime, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(render(sys.argv[1:]))
