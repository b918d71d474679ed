"""The statistics behind the report's claims: intervals for accuracies, paired tests for comparisons.

Two models evaluated on the same images are compared by the images on which they disagree
(exact McNemar test), not by two independent intervals, which would waste the pairing.

The formulas are written out here (the same as statsmodels' `proportion_confint(method="wilson")`,
`mcnemar(exact=True)` and scipy's Welch `ttest_ind`, which tests/test_stats.py checks them
against): importing statsmodels and scipy.stats costs a render about 1.5 s, scipy.special a third of that.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import sqrt

import numpy as np


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
    low, high = wilson(int(correct), n, level)
    return Accuracy(int(correct), n, low, high)


def wilson(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of `correct` successes in `n` trials (clipped to [0, 1] against rounding)."""
    from scipy.special import ndtri

    crit = -float(ndtri((1 - level) / 2))  # scipy's norm.isf(alpha / 2), the normal quantile
    q, crit2 = correct / n, crit**2
    denom = 1 + crit2 / n
    centre = (q + crit2 / (2 * n)) / denom
    half = crit * sqrt(q * (1.0 - q) / n + crit2 / (4.0 * n**2)) / denom
    return min(max(centre - half, 0.0), 1.0), min(max(centre + half, 0.0), 1.0)


def exact_mcnemar(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of min(a_only, b_only) in a_only + b_only
    trials at 1/2, summed in exact integer arithmetic."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    term = tail = 1  # C(n, 0), then C(n, k) from C(n, k - 1), all in integers
    for k in range(1, min(a_only, b_only) + 1):
        term = term * (n - k + 1) // k
        tail += term
    return min(1.0, float(Fraction(2 * tail, 2**n)))


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
    return Paired(a_only, b_only, exact_mcnemar(a_only, b_only), float(a.mean() - b.mean()))


def mean_sd(values) -> str:
    """'93.10% ± 0.12 (sd)': mean and sample standard deviation over seeds, for accuracies in [0, 1]."""
    v = 100 * np.asarray(values, dtype=float)
    sd = v.std(ddof=1) if len(v) > 1 else float("nan")
    return f"{v.mean():.2f}% ± {sd:.2f} (sd)"


def seeds_differ(a, b, alpha: float = 0.05) -> str:
    """Prose: do two sets of per-seed accuracies differ by more than seed noise? (Welch's t-test)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    p = welch_p(a, b)
    diff = 100 * (a.mean() - b.mean())
    verdict = "within seed noise" if p >= alpha else "larger than seed noise"
    return f"a difference of {diff:+.2f} points, {verdict} (Welch's t-test over {len(a)} and {len(b)} seeds, {_p(p)})"


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances), as scipy's `ttest_ind(equal_var=False)`."""
    from scipy.special import stdtr

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    vn1, vn2 = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (vn1 + vn2) ** 2 / (vn1**2 / (len(a) - 1) + vn2**2 / (len(b) - 1))
        t = (a.mean() - b.mean()) / np.sqrt(vn1 + vn2)
    df = 1.0 if np.isnan(df) else df  # both variances zero: any df will do
    return float(2 * stdtr(df, -abs(t)))


def class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Per-class recall from a confusion matrix (rows: true class)."""
    return np.diag(confusion) / confusion.sum(1)
