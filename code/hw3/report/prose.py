"""Numbers written into the report's sentences: each function returns the string the prose shows."""

from __future__ import annotations

import math

import numpy as np

from hw3.report import stats
from hw3.report.record import Evaluation, History


def pct(x: float, digits: int = 1) -> str:
    """0.8765 → '87.7%'."""
    return f"{100 * x:.{digits}f}%"


def num(x: float, digits: int = 3) -> str:
    """A loss; 'NaN' and huge values are written as such."""
    if x is None or math.isnan(x):
        return "NaN"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 else f"{x:.{digits}f}"


def acc_ci(evaluation: Evaluation, head: str | None = None) -> str:
    """'87.65% [87.0, 88.3]': accuracy with its 95% Wilson interval."""
    return str(evaluation.accuracy(head))


def short_ci(correct: np.ndarray) -> str:
    """'98.12 (97.8–98.4)': accuracy in % with its 95% Wilson interval, narrow enough for a table cell."""
    a = stats.accuracy(correct)
    return f"{100 * a.value:.2f} ({100 * a.low:.1f}–{100 * a.high:.1f})"


def epoch_reaching(history: History, accuracy: float) -> str:
    """The first epoch whose validation accuracy is at least `accuracy`, or 'more than N'."""
    epoch = history.first_epoch_reaching(accuracy)
    return str(epoch) if epoch is not None else f"more than {history.n_epochs}"


def count_word(n: int) -> str:
    """3 → 'three' (for counts the prose spells out), 12 → '12'."""
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if 0 <= n < len(words) else str(n)


def row_span(rows: list[int]) -> str:
    """[1, 2, 3] → 'rows 1–3', [5] → 'row 5', [1, 2, 5] → 'rows 1, 2 and 5': table rows for a sentence."""
    rows = sorted(rows)
    if not rows:
        raise ValueError("no rows to name")
    if len(rows) == 1:
        return f"row {rows[0]}"
    if rows == list(range(rows[0], rows[-1] + 1)):
        return f"rows {rows[0]}–{rows[-1]}"
    return "rows " + ", ".join(map(str, rows[:-1])) + f" and {rows[-1]}"
