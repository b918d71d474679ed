"""hw3.stats writes out its three formulas instead of importing statsmodels and scipy.stats (1.5 s of
every render): each must agree with the library it replaces, and rendering must not import those."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from hw3.report import stats


@pytest.mark.parametrize("correct,n", [(0, 10), (1, 10), (9, 10), (10, 10), (90, 100), (8731, 10000), (9471, 10000),
                                       (9999, 10000), (5, 7)])
@pytest.mark.parametrize("level", [0.95, 0.99])
def test_wilson_is_statsmodels_wilson(correct, n, level):
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    low, high = proportion.proportion_confint(correct, n, alpha=1 - level, method="wilson")
    assert stats.wilson(correct, n, level) == (float(low), float(high))  # the same float operations, bit for bit


@pytest.mark.parametrize("a_only,b_only", [(0, 0), (0, 1), (10, 2), (2, 10), (7, 7), (150, 181), (412, 377), (3, 60)])
def test_exact_mcnemar_is_statsmodels_exact_mcnemar(a_only, b_only):
    tables = pytest.importorskip("statsmodels.stats.contingency_tables")
    expected = 1.0 if a_only + b_only == 0 else float(tables.mcnemar([[100, a_only], [b_only, 100]], exact=True).pvalue)
    # ours sums the binomial tail in integers, so it is exact where scipy's binom.cdf rounds
    assert stats.exact_mcnemar(a_only, b_only) == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("a,b", [([0.9310, 0.9322, 0.9301], [0.9280, 0.9291, 0.9275]),
                                 ([0.9471, 0.9466, 0.9478], [0.9460, 0.9482, 0.9455]),
                                 ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
                                 ([0.9, 0.91], [0.8, 0.82, 0.81, 0.79])])
def test_welch_is_scipys_welch(a, b):
    scipy_stats = pytest.importorskip("scipy.stats")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's note on identical samples
        expected = float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    got = stats.welch_p(a, b)
    assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected, rel=1e-12)


def test_the_report_path_imports_neither_statsmodels_nor_scipy_stats(subprocess_env):
    code = ("import sys, numpy as np; from hw3.report import prose, record, runs, stats, tables; "
            "a = np.arange(100) % 3 > 0; b = np.arange(100) % 4 > 0; "
            "str(stats.accuracy(a)); stats.paired(a, b).verdict('A', 'B'); stats.seeds_differ([0.9, 0.91, 0.92], [0.9, 0.9, 0.93]); "
            "print(sorted(m for m in sys.modules if m.startswith(('statsmodels', 'scipy.stats'))))")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
