"""Part 1: the numpy network, its loss, its gradient and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw3.backprop import (gradient, init_weights, logistic_loss, numerical_gradient, predict, sigmoid,
                          stable_logistic_loss)

D, K = 5, 6


def batch(seed: int, B: int, D: int = D, K: int = K):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, D))
    y = rng.integers(0, 2, size=B).astype(float)
    W = init_weights(D, K, seed=seed + 1000)
    return X, y, W


def autograd_gradient(X, y, W):
    """The same loss in torch (float64), differentiated by autograd."""
    w_1 = torch.tensor(W["w_1"], dtype=torch.float64, requires_grad=True)
    w_2 = torch.tensor(W["w_2"], dtype=torch.float64, requires_grad=True)
    z2 = (torch.sigmoid(torch.tensor(X) @ w_1) @ w_2)[:, 0]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z2, torch.tensor(y))
    loss.backward()
    return loss.item(), {"w_1": w_1.grad.numpy(), "w_2": w_2.grad.numpy()}


# --------------------------------------------------------------------------- gradient


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("B", [1, 2, 7, 32])
def test_gradient_matches_central_differences(seed, B):
    X, y, W = batch(seed, B)
    analytic = gradient(X, y, W)
    numeric = numerical_gradient(X, y, W)
    assert set(analytic) == {"w_1", "w_2"}
    for key in ("w_1", "w_2"):
        assert analytic[key].shape == W[key].shape
        assert analytic[key].dtype == np.float64
        np.testing.assert_allclose(analytic[key], numeric[key], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("B", [1, 3, 16, 100])
def test_gradient_and_loss_match_torch_autograd(seed, B):
    X, y, W = batch(seed, B)
    torch_loss, torch_grad = autograd_gradient(X, y, W)
    assert stable_logistic_loss(y, predict(X, W)[1]) == pytest.approx(torch_loss, rel=1e-12, abs=1e-12)
    ours = gradient(X, y, W)
    for key in ("w_1", "w_2"):
        np.testing.assert_allclose(ours[key], torch_grad[key], rtol=1e-10, atol=1e-14)


def test_gradient_accepts_column_labels():
    X, y, W = batch(0, 8)
    flat, column = gradient(X, y, W), gradient(X, y[:, None], W)
    for key in ("w_1", "w_2"):
        np.testing.assert_array_equal(flat[key], column[key])


def test_numerical_gradient_does_not_modify_weights():
    X, y, W = batch(0, 4)
    before = {k: v.copy() for k, v in W.items()}
    numerical_gradient(X, y, W)
    gradient(X, y, W)
    for key in W:
        np.testing.assert_array_equal(W[key], before[key])


def test_gradient_is_finite_for_saturated_units():
    X, y, W = batch(0, 10)
    W = {"w_1": W["w_1"] * 1e4, "w_2": W["w_2"] * 1e4}  # hidden units and output saturate
    g = gradient(X, y, W)
    assert all(np.all(np.isfinite(v)) for v in g.values())


# --------------------------------------------------------------------------- forward pass


@pytest.mark.parametrize("B", [1, 4, 33])
def test_predict_shapes(B):
    X, _, W = batch(0, B)
    z1, z2, y_hat = predict(X, W)
    assert z1.shape == (B, K)
    assert z2.shape == (B, 1)
    assert y_hat.shape == (B, 1)
    assert np.all((y_hat > 0) & (y_hat < 1))
    np.testing.assert_allclose(y_hat, 1 / (1 + np.exp(-z2)))


def test_sigmoid_is_stable_and_symmetric():
    z = np.array([-1e10, -800.0, -1.0, 0.0, 1.0, 800.0, 1e10])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow anywhere
        s = sigmoid(z)
    np.testing.assert_allclose(s, [0, 0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1)), 1, 1])
    np.testing.assert_allclose(s + sigmoid(-z), 1.0)


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stable_loss_equals_naive_loss_where_finite(seed):
    rng = np.random.default_rng(seed)
    z2 = rng.uniform(-20, 20, size=50)
    y = rng.integers(0, 2, size=50)
    y_hat = sigmoid(z2)
    naive = logistic_loss(y, y_hat)
    assert np.isfinite(naive)
    assert stable_logistic_loss(y, z2) == pytest.approx(naive, rel=1e-9)


def test_loss_accepts_column_vectors():
    X, y, W = batch(1, 6)
    _, z2, y_hat = predict(X, W)
    assert stable_logistic_loss(y[:, None], z2) == stable_logistic_loss(y, z2[:, 0])
    assert logistic_loss(y[:, None], y_hat) == logistic_loss(y, y_hat[:, 0])


@pytest.mark.parametrize("z, y, expected", [
    (-1e10, 0, 0.0),    # confidently right
    (+1e10, 1, 0.0),
    (+1e10, 0, 1e10),   # confidently wrong: the loss is |z|
    (-1e10, 1, 1e10),
])
def test_stable_loss_is_finite_and_correct_at_huge_logits(z, y, expected):
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = stable_logistic_loss(np.array([y]), np.array([[z]]))
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_stable_loss_is_finite_on_a_mixed_batch_of_huge_logits():
    z = np.array([-1e10, 1e10, -1e10, 1e10])
    y = np.array([0, 0, 1, 1])
    assert stable_logistic_loss(y, z) == pytest.approx((0 + 1e10 + 1e10 + 0) / 4)


def test_naive_loss_breaks_at_zero_log_zero():
    """The formula as written: 0·log 0 is nan in numpy, with a RuntimeWarning (this is what the stable loss fixes)."""
    with pytest.warns(RuntimeWarning):
        loss = logistic_loss(np.array([0]), np.array([0.0]))
    assert np.isnan(loss)


def test_naive_loss_is_infinite_when_confidently_wrong():
    with pytest.warns(RuntimeWarning):
        assert logistic_loss(np.array([1]), np.array([0.0])) == np.inf


# --------------------------------------------------------------------------- input checks


def good():
    return batch(0, 4)


def test_wrong_X_shape_names_X():
    X, y, W = good()
    with pytest.raises(ValueError, match=r"X must be B×D"):
        predict(X[:, :3], W)
    with pytest.raises(ValueError, match=r"X must be B×D"):
        gradient(X[0], y, W)  # 1-D


@pytest.mark.parametrize("key", ["w_1", "w_2"])
def test_missing_weight_names_it(key):
    X, y, W = good()
    del W[key]
    with pytest.raises(ValueError, match=rf"W is missing \['{key}'\]"):
        predict(X, W)
    with pytest.raises(ValueError, match=key):
        gradient(X, y, W)


def test_W_not_a_dict_is_a_type_error():
    X, _, W = good()
    with pytest.raises(TypeError, match="W must be a dict"):
        predict(X, [W["w_1"], W["w_2"]])


@pytest.mark.parametrize("shape", [(K,), (1, K), (K + 1, 1), (K, 2)])
def test_wrong_w2_shape_names_w2(shape):
    X, y, W = good()
    W["w_2"] = np.ones(shape)
    with pytest.raises(ValueError, match=r"W\['w_2'\] must be K×1"):
        predict(X, W)


def test_wrong_w1_rank_names_w1():
    X, _, W = good()
    W["w_1"] = np.ones(D)
    with pytest.raises(ValueError, match=r"W\['w_1'\] must be D×K"):
        predict(X, W)


@pytest.mark.parametrize("labels", [[0, 1, 2, 1], [0, 1, -1, 0], [0.5, 1, 0, 1]])
def test_labels_outside_01_name_y(labels):
    X, _, W = good()
    with pytest.raises(ValueError, match=r"y must hold labels in \{0, 1\}"):
        gradient(X, np.array(labels), W)
    with pytest.raises(ValueError, match=r"y must hold labels in \{0, 1\}"):
        stable_logistic_loss(np.array(labels), np.zeros(4))
    with pytest.raises(ValueError, match=r"y must hold labels in \{0, 1\}"):
        logistic_loss(np.array(labels), np.full(4, 0.5))


def test_nan_in_X_is_rejected():
    X, y, W = good()
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        predict(X, W)
    with pytest.raises(ValueError, match="X contains NaN"):
        gradient(X, y, W)


@pytest.mark.parametrize("key", ["w_1", "w_2"])
def test_nan_in_weights_names_the_weight(key):
    X, y, W = good()
    W[key] = W[key].copy()
    W[key][0, 0] = np.nan
    with pytest.raises(ValueError, match=rf"W\['{key}'\] contains NaN"):
        gradient(X, y, W)


def test_nan_labels_and_logits_are_rejected():
    with pytest.raises(ValueError, match="y must hold labels"):
        stable_logistic_loss(np.array([0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match="z2 contains NaN"):
        stable_logistic_loss(np.array([0, 1]), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="y_hat contains NaN"):
        logistic_loss(np.array([0, 1]), np.array([0.5, np.nan]))


def test_mismatched_label_count_names_y():
    X, y, W = good()
    with pytest.raises(ValueError, match=r"y has 3 labels but the batch has 4 rows"):
        gradient(X, y[:3], W)


def test_mismatched_loss_lengths_name_the_argument():
    with pytest.raises(ValueError, match=r"z2 must have one value per label"):
        stable_logistic_loss(np.array([0, 1, 1]), np.zeros(2))
    with pytest.raises(ValueError, match=r"y_hat must have one value per label"):
        logistic_loss(np.array([0, 1, 1]), np.full(4, 0.5))


def test_y_hat_outside_unit_interval_is_rejected():
    with pytest.raises(ValueError, match="y_hat must be probabilities"):
        logistic_loss(np.array([0, 1]), np.array([0.5, 1.5]))


def test_labels_of_wrong_rank_name_y():
    with pytest.raises(ValueError, match=r"y must be a vector of B labels"):
        stable_logistic_loss(np.zeros((2, 2)), np.zeros(2))
