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


# ----------------------------------------------------------------------------------------------
# Recipes over seeds: a configuration trained from several seeds is summarised by the mean of its
# final accuracies, and two configurations are compared by Welch's t-test on those per-seed values,
# with Holm's correction over the family of comparisons that one table shows.


@dataclass(frozen=True)
class SeedSummary:
    """One configuration's final accuracy over its seeds: mean, sample sd and a t interval of the mean."""

    values: tuple[float, ...]  # one per seed, in the seed order of the run list
    level: float = 0.95

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        """Student-t interval of the mean at `level` (n - 1 degrees of freedom); NaN for one seed."""
        if self.n < 2:
            return float("nan"), float("nan")
        from scipy.special import stdtrit

        half = float(stdtrit(self.n - 1, (1 + self.level) / 2)) * self.sd / sqrt(self.n)
        return self.mean - half, self.mean + half

    def __str__(self) -> str:
        """'88.64 ± 0.12': mean ± sd in percentage points (sd over seeds)."""
        return f"{100 * self.mean:.2f} ± {100 * self.sd:.2f}" if self.n > 1 else f"{100 * self.mean:.2f}"


def seed_summary(values, level: float = 0.95) -> SeedSummary:
    values = tuple(float(v) for v in values)
    if not values:
        raise ValueError("a seed summary needs at least one value")
    return SeedSummary(values, level)


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values (as statsmodels' `multipletests(method="holm")`), in the given order.

    Sorted ascending, the i-th smallest (0-based) is multiplied by (m - i), capped at 1, and made
    non-decreasing; an adjusted p below alpha rejects at family-wise error rate alpha.
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


# How a comparison names a per-seed difference of two configurations ("CNN: original − permuted").
DIFFERENCE = " − "


@dataclass(frozen=True)
class SeedTest:
    """One comparison of two configurations over their seeds, within a family corrected by Holm."""

    a: str
    b: str
    summary_a: SeedSummary
    summary_b: SeedSummary
    p_value: float  # Welch's t-test, two-sided, uncorrected
    p_holm: float  # adjusted over the family

    @property
    def difference(self) -> float:
        """Mean of A minus mean of B (a fraction; ×100 for points)."""
        return self.summary_a.mean - self.summary_b.mean

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_holm < alpha

    def verdict(self, alpha: float = 0.05) -> str:
        if not self.significant(alpha):
            return "within seed noise"
        # A row of differences (an effect per seed, named with DIFFERENCE) is larger, not better, on one side.
        word = "larger" if DIFFERENCE in self.a + self.b else "better"
        return f"{self.a if self.difference > 0 else self.b} {word}"


@dataclass(frozen=True)
class SeedFamily:
    """A family of seed-level comparisons, Holm-corrected together: what one statistics table shows."""

    name: str  # what the family is, for the caption: "Part 2: optimisers, models and permutation, test accuracy"
    tests: tuple[SeedTest, ...]
    alpha: float = 0.05

    def __getitem__(self, pair: tuple[str, str]) -> SeedTest:
        """The test of (a, b), by the names it was built with."""
        for t in self.tests:
            if (t.a, t.b) == pair:
                return t
        raise KeyError(f"no comparison {pair[0]!r} against {pair[1]!r} in the family {self.name!r}")

    def __len__(self) -> int:
        return len(self.tests)

    def rows(self, where) -> list[int]:
        """1-based rows of the family's table whose test satisfies `where(test)`: for prose such as
        "rows 1–4 compare the MLP runs", derived from the family rather than typed."""
        return [i for i, t in enumerate(self.tests, 1) if where(t)]

    def statement(self) -> str:
        """The sentence that states the family and its correction once."""
        return (f"{self.name}: {len(self.tests)} comparisons, each a two-sided Welch t-test on the per-seed values, "
                f"with Holm's correction over all {len(self.tests)} (family-wise error rate {self.alpha:g})")


def seed_family(name: str, pairs, alpha: float = 0.05) -> SeedFamily:
    """Welch's t-test of each (name A, per-seed values A, name B, per-seed values B), Holm-corrected over all of them."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("a family needs at least one comparison")
    names = [(a, b) for a, _, b, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError("a comparison appears twice in the family")
    short = [n for a, va, b, vb in pairs for n, v in ((a, va), (b, vb)) if len(v) < 2]
    if short:
        raise ValueError(f"a seed-level test needs at least two seeds per side; {', '.join(sorted(set(short)))} has fewer")
    raw = [welch_p(va, vb) for _, va, _, vb in pairs]
    adjusted = holm(raw)
    tests = tuple(SeedTest(a, b, seed_summary(va), seed_summary(vb), p, q) for (a, va, b, vb), p, q in zip(pairs, raw, adjusted))
    return SeedFamily(name, tests, alpha)
