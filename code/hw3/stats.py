"""The statistics behind the report's claims: intervals for accuracies, paired tests for comparisons.

Two models evaluated on the same images are compared by the images on which they disagree
(exact McNemar test), not by two independent intervals, which would waste the pairing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint


@dataclass(frozen=True)
class Accuracy:
    correct: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.correct / self.n

    def __str__(self) -> str:
        return f"{100 * self.value:.2f}% [{100 * self.low:.2f}, {100 * self.high:.2f}]"


def accuracy(correct: np.ndarray | int, n: int | None = None, level: float = 0.95) -> Accuracy:
    """Accuracy with its Wilson interval, from a boolean per-image array or from counts."""
    if n is None:
        correct = np.asarray(correct, dtype=bool)
        correct, n = int(correct.sum()), correct.size
    if n <= 0:
        raise ValueError("an accuracy needs at least one image")
    low, high = proportion_confint(int(correct), n, alpha=1 - level, method="wilson")
    return Accuracy(int(correct), n, float(low), float(high))


@dataclass(frozen=True)
class Paired:
    a_only: int  # images A gets right and B gets wrong
    b_only: int
    p_value: float
    difference: float  # accuracy of A minus accuracy of B

    def verdict(self, a: str, b: str, alpha: float = 0.05) -> str:
        """Prose: which is better, or that the difference is within noise, with the test's numbers."""
        # Counts in the order of the sentence: the first-named model's wins first.
        if self.p_value >= alpha:
            detail = f"{self.a_only} against {self.b_only} discordant images, exact McNemar {_p(self.p_value)}"
            return f"{a} and {b} are within noise of each other ({detail})"
        (better, wins), (worse, losses) = sorted(((a, self.a_only), (b, self.b_only)), key=lambda t: -t[1])
        detail = f"{wins} against {losses} discordant images, exact McNemar {_p(self.p_value)}"
        return f"{better} is better than {worse} by {100 * abs(self.difference):.2f} points ({detail})"


def _p(p: float) -> str:
    return f"p = {p:.2g}" if p >= 1e-4 else "p < 0.0001"


def format_p(p: float) -> str:
    """A p-value for a table cell: '0.045', '< 0.0001'."""
    return f"{p:.2g}" if p >= 1e-4 else "< 0.0001"


@dataclass(frozen=True)
class Welch:
    difference: float  # mean of A minus mean of B
    p_value: float


def welch(a, b) -> Welch:
    """Welch's t-test of two sets of per-seed accuracies (unequal variances)."""
    from scipy.stats import ttest_ind

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return Welch(float(a.mean() - b.mean()), float(ttest_ind(a, b, equal_var=False).pvalue))


def paired(correct_a: np.ndarray, correct_b: np.ndarray) -> Paired:
    """Exact McNemar test of two classifiers' per-image correctness on the same images."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same images, got {a.shape} and {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    table = [[int((a & b).sum()), a_only], [b_only, int((~a & ~b).sum())]]
    p = 1.0 if a_only + b_only == 0 else float(mcnemar(table, exact=True).pvalue)
    return Paired(a_only, b_only, p, float(a.mean() - b.mean()))


def mean_sd(values) -> str:
    """'93.10% ± 0.12 (sd)': mean and sample standard deviation over seeds, for accuracies in [0, 1]."""
    v = 100 * np.asarray(values, dtype=float)
    sd = v.std(ddof=1) if len(v) > 1 else float("nan")
    return f"{v.mean():.2f}% ± {sd:.2f} (sd)"


def seeds_differ(a, b, alpha: float = 0.05) -> str:
    """Prose: do two sets of per-seed accuracies differ by more than seed noise? (Welch's t-test)."""
    from scipy.stats import ttest_ind

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    p = float(ttest_ind(a, b, equal_var=False).pvalue)
    diff = 100 * (a.mean() - b.mean())
    verdict = "within seed noise" if p >= alpha else "larger than seed noise"
    return f"a difference of {diff:+.2f} points, {verdict} (Welch's t-test over {len(a)} and {len(b)} seeds, {_p(p)})"
