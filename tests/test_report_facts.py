"""The mathematical facts the report states, pinned so that the prose cannot drift from the truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw3 import backprop
from hw3.nn import data
from hw3.report import stats


def test_permuting_inputs_is_absorbed_by_permuting_the_rows_of_the_first_layer():
    rng = np.random.default_rng(0)
    D, K = 12, 5
    W, x = rng.standard_normal((D, K)), rng.standard_normal(D)
    P = np.eye(D)[rng.permutation(D)]
    assert np.allclose((P @ W).T @ (P @ x), W.T @ x), "(PW)ᵀ(Px) must equal Wᵀx for a permutation matrix P"
    assert not np.allclose((P.T @ W).T @ (P @ x), W.T @ x), "(PᵀW)ᵀPx is WᵀP²x, not Wᵀx: the report must not claim it"


def test_random_permutation_transform_is_that_matrix_for_the_mlp():
    perm = data.RandomPermutation(16, seed=3)
    x = torch.arange(16.0).reshape(1, 4, 4)
    W = torch.randn(16, 3, dtype=torch.float64)
    permuted = perm(x).reshape(16).double()
    # The permuted image is Px; permuting W's rows the same way gives back the original pre-activations.
    assert torch.allclose(W[perm.permutation].T @ permuted, W.T @ x.reshape(16).double())


def test_naive_loss_is_nan_at_yhat_zero_label_zero():
    with np.errstate(all="ignore"):
        assert np.isnan(backprop.logistic_loss(np.array([0]), np.array([0.0]))), "0·log 0 must give NaN in the naive formula"


def test_naive_loss_is_nan_for_a_very_negative_logit_and_label_zero():
    with np.errstate(all="ignore"):
        value = backprop.logistic_loss(np.array([0]), backprop.sigmoid(np.array([-1e10])))
    assert np.isnan(value), "σ(−1e10) underflows to 0, so the naive loss is 0·log 0 = NaN, not 'right by luck'"


def test_naive_loss_is_infinite_for_a_very_positive_logit_and_label_zero():
    with np.errstate(all="ignore"):
        assert backprop.logistic_loss(np.array([0]), backprop.sigmoid(np.array([1e10]))) == np.inf


def test_stable_loss_at_both_extremes():
    assert backprop.stable_logistic_loss(np.array([0]), np.array([-1e10])) == 0.0
    assert backprop.stable_logistic_loss(np.array([0]), np.array([1e10])) == pytest.approx(1e10)


def test_wilson_interval_matches_the_closed_form():
    a = stats.accuracy(90, 100)
    z = 1.959963984540054
    centre = (0.9 + z**2 / 200) / (1 + z**2 / 100)
    half = z / (1 + z**2 / 100) * np.sqrt(0.9 * 0.1 / 100 + z**2 / 40000)
    assert (a.low, a.high) == pytest.approx((centre - half, centre + half))
    assert a.low < a.value < a.high


def test_exact_mcnemar_uses_only_the_discordant_images():
    a = np.array([True] * 50 + [True] * 10 + [False] * 2 + [False] * 38)
    b = np.array([True] * 50 + [False] * 10 + [True] * 2 + [False] * 38)
    p = stats.paired(a, b)
    assert (p.a_only, p.b_only) == (10, 2)
    # two-sided exact binomial test of 2 successes in 12 trials at 1/2
    from math import comb
    expected = min(1.0, 2 * sum(comb(12, k) for k in range(0, 3)) / 2**12)
    assert p.p_value == pytest.approx(expected)
    assert "better" in p.verdict("A", "B") and p.verdict("A", "B").startswith("A")


def test_identical_classifiers_are_within_noise():
    a = np.array([True, False, True])
    assert "within noise" in stats.paired(a, a).verdict("A", "B")


def test_paired_test_rejects_different_image_sets():
    with pytest.raises(ValueError, match="same images"):
        stats.paired(np.ones(3, bool), np.ones(4, bool))


def test_verdict_names_the_winner_with_its_own_count_first():
    a = np.array([True] * 2 + [False] * 30 + [True] * 68)
    b = np.array([False] * 2 + [True] * 30 + [True] * 68)
    text = stats.paired(a, b).verdict("A", "B")
    assert text.startswith("B is better than A") and "(30 against 2 discordant" in text, text
    within = stats.paired(a[:40], a[:40]).verdict("A", "B")
    assert within.startswith("A and B are within noise"), within
