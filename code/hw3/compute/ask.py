"""One yes/no question before something slow or destructive: asked at a terminal, else `--yes` or HW3_YES=1.

Without a terminal there is nobody to answer, so the question is a one-line error (exit status 2)
unless the answer was given in advance: a script never hangs on a prompt, and never goes ahead unasked.
"""

from __future__ import annotations

import sys

from hw3 import environment


def confirmed(question: str, refusal: str, yes: bool = False, stdin=None, out=None) -> bool:
    """True to go ahead: `yes`, HW3_YES=1, or 'y' typed at a terminal. ValueError(`refusal`) when no one can be asked."""
    stdin, out = stdin or sys.stdin, out or sys.stdout
    if yes or environment.assume_yes():
        print("Going ahead (--yes).", file=out, flush=True)
        return True
    if not is_terminal(stdin):
        raise ValueError(refusal)
    print(f"{question} [y/N] ", end="", file=out, flush=True)
    return stdin.readline().strip().lower() in ("y", "yes")


def is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
