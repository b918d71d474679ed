"""Find the Quarto CLI that `make report` renders with, installing the tested version if there is none.

    python tools/find_quarto.py [--no-install]

Looks, in order, at `$QUARTO`, `quarto` on PATH, and a Quarto installed in this interpreter's
environment (PyPI's `quarto-cli`). If none is found it installs `quarto-cli==1.7.34` there with
pip. On success it prints the executable's absolute path on stdout, and on stderr the version it
found, with a one-line warning when that is not the version we test. On failure it prints one line
naming the three ways to get Quarto on stdout and exits with status 2 (the Makefile turns that line
into its own one-line error).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTED = "1.7.34"
HOW_TO_GET = (
    f"no Quarto found (looked at $QUARTO, quarto on PATH, and quarto-cli in {sys.prefix}) and "
    f"`pip install quarto-cli=={TESTED}` failed (it downloads Quarto, so it needs internet): install Quarto "
    f"{TESTED} from https://quarto.org/docs/get-started/, or `pip install quarto-cli=={TESTED}` with internet, "
    "or offline as .ci/run does: export PATH=\"$(../shared/tools/quarto/install):$PATH\""
)


def _installed_in_env() -> Path | None:
    """The binary that PyPI's quarto-cli unpacks. Its `quarto` console script is avoided on purpose:
    it calls that binary and drops its exit status, so a failed render would look like a success."""
    spec = importlib.util.find_spec("quarto_cli")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "quarto"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def locate(env: dict[str, str] | None = None) -> Path | None:
    """$QUARTO, else `quarto` on PATH, else the quarto-cli of this environment; None if none runs."""
    env = os.environ if env is None else env
    for candidate in (env.get("QUARTO"), shutil.which("quarto", path=env.get("PATH"))):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate).resolve()
    return _installed_in_env()


def install() -> Path | None:
    """pip install the tested quarto-cli into this environment; None if that fails (no internet)."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--retries", "1", "--timeout", "20", "--no-deps", f"quarto-cli=={TESTED}"]
    print(f"find_quarto: trying pip install quarto-cli=={TESTED} into {sys.prefix}", file=sys.stderr)
    try:
        ok = subprocess.run(command, capture_output=True, text=True, timeout=900).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    importlib.invalidate_caches()
    return _installed_in_env() if ok else None


def version(quarto: Path) -> str:
    try:
        return subprocess.run([str(quarto), "--version"], capture_output=True, text=True, timeout=120).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def main(argv: list[str]) -> int:
    quarto = locate() or (None if "--no-install" in argv else install())
    if quarto is None:
        print(HOW_TO_GET)
        return 2
    found = version(quarto)
    if found != TESTED:
        print(f"find_quarto: warning: Quarto {found or '(unknown version)'} at {quarto}; the report is tested with {TESTED}",
              file=sys.stderr)
    else:
        print(f"find_quarto: Quarto {found} at {quarto}", file=sys.stderr)
    print(quarto)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
