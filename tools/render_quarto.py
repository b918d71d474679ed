"""Render with the real Quarto CLI, executing the document once for all its formats, and leave no
process behind.

    python tools/render_quarto.py [report.qmd] [quarto render options, e.g. --output-dir DIR --to html]

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

The exit status is Quarto's.
"""

from __future__ import annotations

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

TOKEN_VAR = "HW3_RENDER_ID"
# Seconds the daemon waits for the next format's request before it exits on its own: longer than
# any gap between two formats' executions of one render (pandoc and typst run in between), short
# enough that a daemon whose render was killed outright does not linger long.
IDLE_TIMEOUT_S = 120
GRACE_S = 10.0


def quarto_command(quarto: str, args: list[str]) -> list[str]:
    """`quarto render ARGS` with one daemon kernel for all formats, started fresh."""
    if not args or args[0].startswith("-"):
        args = ["report.qmd", *args]
    return [quarto, "render", *args, "--execute-daemon", str(IDLE_TIMEOUT_S)]


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
    quarto = shutil.which("quarto", path=(env or os.environ).get("PATH"))
    if quarto is None:
        print("render_quarto: no `quarto` on PATH", file=sys.stderr)
        return 127
    env = dict(os.environ if env is None else env)
    token = env[TOKEN_VAR] = uuid.uuid4().hex  # new for every render, whatever the caller's environment holds
    runtime = Path(tempfile.mkdtemp(prefix="hw3-quarto-runtime-"))
    env["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        return subprocess.run(quarto_command(quarto, args), env=env).returncode
    except KeyboardInterrupt:
        return 130
    finally:
        signalled = stop(token, runtime)
        if signalled:
            print(f"render_quarto: the Jupyter daemon did not exit on abort; signalled processes {signalled}", file=sys.stderr)
        shutil.rmtree(runtime, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(render(sys.argv[1:]))
