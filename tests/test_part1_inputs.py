"""Part 1's functions on inputs numpy would half-accept: infinite logits, complex weights, strings.

Each used to give a wrong answer or numpy's message without the argument's name (issue 29).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hw3 import backprop

W = {"w_1": np.ones((2, 3)), "w_2": np.ones((3, 1))}


@pytest.mark.parametrize("y, z, expected", [([1, 0], [np.inf, -np.inf], 0.0), ([1], [-np.inf], math.inf),
                                            ([0], [np.inf], math.inf), ([1, 0, 1], [np.inf, 0.0, 0.0], 2 * math.log(2) / 3)])
def test_stable_loss_is_right_at_infinite_logits(y, z, expected):
    assert backprop.stable_logistic_loss(np.array(y), np.array(z)) == pytest.approx(expected)


def test_stable_loss_is_unchanged_for_finite_logits():
    rng = np.random.default_rng(0)
    y, z = rng.integers(0, 2, 50), rng.normal(0, 30, 50)
    assert backprop.stable_logistic_loss(y, z) == pytest.approx(np.mean(np.logaddexp(0, z) - y * z), rel=1e-12)


@pytest.mark.parametrize("key", ["w_1", "w_2"])
def test_complex_weights_are_rejected_naming_the_weight(key):
    W2 = {**W, key: W[key] + 1j}
    with pytest.raises(ValueError, match=rf"W\['{key}'\] must be real"):
        backprop.predict(np.ones((4, 2)), W2)


def test_complex_inputs_and_logits_are_rejected_naming_them():
    with pytest.raises(ValueError, match="X must be real"):
        backprop.predict(np.ones((4, 2)) + 0j, W)
    with pytest.raises(ValueError, match="z2 must be real"):
        backprop.stable_logistic_loss(np.array([1, 0]), np.array([1 + 1j, 0]))


@pytest.mark.parametrize("labels", [["a", "b"], np.array(["1", "0"]), np.array([b"1", b"0"])])
def test_string_or_object_labels_name_y(labels):
    with pytest.raises(ValueError, match="y must hold numbers"):
        backprop.stable_logistic_loss(labels, np.zeros(2))


def test_object_arrays_of_numbers_still_work():
    assert backprop.stable_logistic_loss(np.array([1, 0], dtype=object), np.zeros(2)) == pytest.approx(math.log(2))
