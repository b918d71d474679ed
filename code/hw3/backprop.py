"""Part 1: a one-hidden-layer sigmoid network with logistic loss, in numpy.

Shapes: X is B×D, W = {"w_1": D×K, "w_2": K×1}, y is B (or B×1) of labels in {0, 1}.
Every function works on the whole batch at once; there is no loop over samples.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    # Written with exp(-|z|) so neither branch overflows for large |z|.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _floats(a: np.ndarray, name: str) -> np.ndarray:
    """`a` as floats, or ValueError naming `name`. numpy would drop a complex part with only a warning,
    and read strings as numbers or fail with a message that names no argument."""
    arr = np.asarray(a)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real numbers, got complex values (dtype {arr.dtype})")
    if arr.dtype.kind not in "biuf":
        try:
            if arr.dtype.kind in "USV":
                raise TypeError
            return arr.astype(float)  # an object array of plain numbers
        except (TypeError, ValueError):
            raise ValueError(f"{name} must hold numbers, got {arr.dtype} values such as {arr.ravel()[:3].tolist()}") from None
    return arr.astype(float)


def _check_weights(W: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(W, Mapping):
        raise TypeError(f"W must be a dict with keys 'w_1' and 'w_2', got {type(W).__name__}")
    missing = [k for k in ("w_1", "w_2") if k not in W]
    if missing:
        raise ValueError(f"W is missing {missing}; expected W = {{'w_1': D×K, 'w_2': K×1}}")
    w_1, w_2 = _floats(W["w_1"], "W['w_1']"), _floats(W["w_2"], "W['w_2']")
    if w_1.ndim != 2:
        raise ValueError(f"W['w_1'] must be D×K (2-D), got shape {w_1.shape}")
    if w_2.shape != (w_1.shape[1], 1):
        raise ValueError(f"W['w_2'] must be K×1 = {(w_1.shape[1], 1)} to match W['w_1'] {w_1.shape}, got {w_2.shape}")
    for name, w in (("W['w_1']", w_1), ("W['w_2']", w_2)):
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{name} contains NaN or infinite values")
    return w_1, w_2


def _check_inputs(X: np.ndarray, w_1: np.ndarray) -> np.ndarray:
    X = _floats(X, "X")
    if X.ndim != 2 or X.shape[1] != w_1.shape[0]:
        raise ValueError(f"X must be B×D with D = {w_1.shape[0]} (rows of W['w_1']), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X is an empty batch (B = 0): the average loss and its gradient are undefined")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values")
    return X


def _check_labels(y: np.ndarray, batch: int | None = None, name: str = "y") -> np.ndarray:
    y = _floats(y, name)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must be a vector of B labels (B or B×1), got shape {y.shape}")
    if y.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B = 0): the average loss is undefined")
    if batch is not None and y.shape[0] != batch:
        raise ValueError(f"{name} has {y.shape[0]} labels but the batch has {batch} rows")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"{name} must hold labels in {{0, 1}}, got values {np.unique(y)[:5]}")
    return y


def _as_vector(a: np.ndarray, name: str, batch: int) -> np.ndarray:
    a = _floats(a, name)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.shape != (batch,):
        raise ValueError(f"{name} must have one value per label (shape ({batch},) or ({batch}, 1)), got {a.shape}")
    if np.any(np.isnan(a)):
        raise ValueError(f"{name} contains NaN")
    return a


def predict(X: np.ndarray, W: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward pass. Returns z1 (B×K, pre-activations), z2 (B×1, logits) and y_hat = σ(z2) (B×1)."""
    w_1, w_2 = _check_weights(W)
    X = _check_inputs(X, w_1)
    z1 = X @ w_1
    z2 = sigmoid(z1) @ w_2
    return z1, z2, sigmoid(z2)


def logistic_loss(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Average of −[y log ŷ + (1−y) log(1−ŷ)], written as the formula: it breaks at ŷ ∈ {0, 1}."""
    y = _check_labels(y)
    y_hat = _as_vector(y_hat, "y_hat", y.shape[0])
    if np.any((y_hat < 0) | (y_hat > 1)):
        raise ValueError("y_hat must be probabilities in [0, 1]")
    return float(np.mean(-(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat))))


def stable_logistic_loss(y: np.ndarray, z2: np.ndarray) -> float:
    """The same loss from the logits: log(1+e^z) − y·z, written per label as log(1+e^−z) for y = 1 and
    log(1+e^z) for y = 0 (= logaddexp(0, ±z)). Finite for any finite z, and right at z = ±∞ too: 0 when
    the infinite logit has the label's sign, +∞ when it has the other (log(1+e^z) − z would be ∞ − ∞)."""
    y = _check_labels(y)
    z2 = _as_vector(z2, "z2", y.shape[0])
    return float(np.mean(np.logaddexp(0.0, np.where(y == 1, -z2, z2))))


def gradient(X: np.ndarray, y: np.ndarray, W: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gradient of the average stable loss with respect to W, by backpropagation over the whole batch."""
    w_1, w_2 = _check_weights(W)
    X = _check_inputs(X, w_1)
    y = _check_labels(y, batch=X.shape[0])
    a1 = sigmoid(X @ w_1)                        # B×K hidden activations
    z2 = a1 @ w_2                                # B×1 logits
    delta_2 = (sigmoid(z2) - y[:, None]) / X.shape[0]  # B×1: ∂L/∂z2, with the 1/B of the mean
    delta_1 = (delta_2 @ w_2.T) * a1 * (1 - a1)  # B×K: ∂L/∂z1
    return {"w_1": X.T @ delta_1, "w_2": a1.T @ delta_2}


def numerical_gradient(X: np.ndarray, y: np.ndarray, W: Mapping[str, np.ndarray], eps: float = 1e-6) -> dict[str, np.ndarray]:
    """Central finite differences of the stable loss: the reference that `gradient` is checked against."""
    W = {k: np.array(v, dtype=float) for k, v in W.items()}
    grads = {}
    for key, w in W.items():
        g = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            old = w[idx]
            w[idx] = old + eps
            plus = stable_logistic_loss(y, predict(X, W)[1])
            w[idx] = old - eps
            minus = stable_logistic_loss(y, predict(X, W)[1])
            w[idx] = old
            g[idx] = (plus - minus) / (2 * eps)
        grads[key] = g
    return grads


def init_weights(D: int = 5, K: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal weights of the homework's shapes, seeded."""
    rng = np.random.default_rng(seed)
    return {"w_1": rng.standard_normal((D, K)), "w_2": rng.standard_normal((K, 1))}
