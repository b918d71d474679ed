"""Part 3's data: MultiMNIST canvases, two MNIST digits on one 36×36 image, and their splits.

x1 sits at the top-left [0:28, 0:28], x2 at the bottom-right [8:36, 8:36]; where they overlap
([8:28, 8:28]) the canvas takes the pixel-wise max. The max favours neither digit's pixels, but the
placement is not symmetric: the overlap covers the lower right of the left digit and the upper left
of the right one, which are different parts of a digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hw3.nn import data

CANVAS = 36
DIGIT = 28
OFFSET = CANVAS - DIGIT  # 8
HEADS = ("left", "right")


def _check_digits(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.shape[-2:] != (DIGIT, DIGIT):
        raise ValueError(f"{name} must be a 28×28 MNIST image (28×28 or 1×28×28, or N×28×28 when batched), got shape {tuple(x.shape)}")
    return x


def make_new_samples(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Batched `make_new_sample`: …×28×28 and …×28×28 (same shape) → …×36×36, one canvas per pair."""
    _check_digits(x1, "x1"), _check_digits(x2, "x2")
    if x1.shape != x2.shape:
        raise ValueError(f"x1 and x2 must have the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}")
    if x1.dtype != x2.dtype:  # writing one into a canvas of the other's dtype would cast it silently (floats to 0 in uint8)
        raise ValueError(f"x1 and x2 must have the same dtype, got {x1.dtype} and {x2.dtype}; convert both explicitly")
    left = x1.new_zeros(*x1.shape[:-2], CANVAS, CANVAS)
    right = left.clone()
    left[..., :DIGIT, :DIGIT] = x1
    right[..., OFFSET:, OFFSET:] = x2
    return torch.maximum(left, right)


def make_new_sample(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """One MultiMNIST image: x1 top-left, x2 bottom-right, max on the overlap.

    Each digit is 28×28 or 1×28×28; the canvas is 36×36, or 1×36×36 when x1 has a channel dim.
    """
    for x, name in ((x1, "x1"), (x2, "x2")):
        _check_digits(x, name)
        if tuple(x.shape) not in ((DIGIT, DIGIT), (1, DIGIT, DIGIT)):
            raise ValueError(f"{name} must be 28×28 or 1×28×28, got shape {tuple(x.shape)}; use make_new_samples for batches")
    canvas = make_new_samples(x1.reshape(DIGIT, DIGIT), x2.reshape(DIGIT, DIGIT))
    return canvas.unsqueeze(0) if x1.ndim == 3 else canvas


def random_pairs(n_images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent seeded permutations of range(n_images): pair i is (left[i], right[i]).

    Each image is used exactly once on the left and once on the right. Pairs may share a class
    (about 1 in 10), and an image may rarely pair with itself (about once per dataset, as for any
    random permutation's fixed points); both are harmless, and we keep them rather than bias the draw.
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n_images, generator=gen), torch.randperm(n_images, generator=gen)


@dataclass(frozen=True)
class MultiSplits:
    """Canvases (uint8 N×36×36) with left and right labels, for train / val / test."""

    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _paired(images: torch.Tensor, labels: torch.Tensor, seed: int):
    left, right = random_pairs(len(images), seed)
    return make_new_samples(images[left], images[right]), labels[left].clone(), labels[right].clone()


def multimnist_splits(pair_seed: int = 0, split_seed: int = 0) -> MultiSplits:
    """60,000 training canvases from MNIST train (50,000 train + 10,000 validation) and 10,000 test canvases from MNIST test.

    The 60k MNIST training images are split 50k/10k first and each part is paired within itself,
    so no digit image appears in both a training and a validation canvas; test canvases use only
    MNIST test images.
    """
    train_images, train_labels = data.load_raw("MNIST", train=True)
    test_images, test_labels = data.load_raw("MNIST", train=False)
    train_idx, val_idx = data.train_val_indices(len(train_images), data.VAL_SIZE, split_seed)
    return MultiSplits(
        train=_paired(train_images[train_idx], train_labels[train_idx], pair_seed),
        val=_paired(train_images[val_idx], train_labels[val_idx], pair_seed + 1),
        test=_paired(test_images, test_labels, pair_seed + 2),
    )


def as_tensor_dataset(split: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.utils.data.TensorDataset:
    """The homework's TensorDataset(images, left_labels, right_labels), images float N×1×36×36 in [0, 1]."""
    images, left, right = split
    return torch.utils.data.TensorDataset(data.to_float(images), left, right)


def prepared(pair_seed: int, device: torch.device) -> tuple[dict[str, tuple[torch.Tensor, ...]], dict[str, float]]:
    """(x, left, right) per split on `device`, x as floats normalised with the training canvases' statistics."""
    splits = multimnist_splits(pair_seed)
    pixels = data.to_float(splits.train[0])
    norm = {"mean": pixels.mean().item(), "std": pixels.std().item()}

    def ready(split):
        x = data.to_float(split[0]).sub_(norm["mean"]).div_(norm["std"])
        return tuple(t.to(device) for t in (x, split[1], split[2]))

    return {"train": ready(splits.train), "val": ready(splits.val), "test": ready(splits.test)}, norm
