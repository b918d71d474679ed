"""Batched augmentations (hw3.augment): shapes, seeded determinism, and what each one does to pixels."""

from __future__ import annotations

import pytest
import torch

from hw3.augment import Augmentation, random_crop, random_erasing, random_hflip


def batch(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("aug", [Augmentation(2, True, 0.5, -1.0), Augmentation(crop_padding=3), Augmentation(hflip=True),
                                 Augmentation(erasing=1.0)])
def test_shape_dtype_and_determinism_under_a_seed(aug):
    x = batch()
    a, b = aug(x, gen(5)), aug(x, gen(5))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(aug(x, gen(5)), aug(x, gen(6)))


def test_inactive_augmentation_is_identity():
    x = batch()
    assert not Augmentation().active
    assert torch.equal(Augmentation()(x, gen()), x)


def test_random_crop_is_a_shift_with_fill():
    x = batch(64)
    out = random_crop(x, 2, gen(), fill=-7.0)
    for i in range(len(x)):
        # every output is the input shifted by some (dy, dx) in [-2, 2]², padded with the fill value
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                padded = torch.nn.functional.pad(x[i:i + 1], (2, 2, 2, 2), value=-7.0)
                window = padded[0, :, 2 + dy:30 + dy, 2 + dx:30 + dx]
                found |= torch.equal(window, out[i])
        assert found, f"sample {i} is not a shifted copy"
    assert (out == -7.0).any()  # some padding shows
    assert torch.equal(random_crop(x, 0, gen()), x)


def test_random_hflip_flips_exactly_the_drawn_samples():
    x = batch(200)
    out = random_hflip(x, gen(), p=0.5)
    flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert torch.all(flipped ^ kept)
    assert 60 < flipped.sum() < 140  # about half
    assert torch.equal(random_hflip(x, gen(), p=1.0), x.flip(-1))
    assert torch.equal(random_hflip(x, gen(), p=0.0), x)


def test_random_erasing_sets_one_rectangle_to_fill():
    x = batch(100) + 1.0  # all pixels ≥ 1, so the fill value 0 marks the erased ones exactly
    out = random_erasing(x, gen(), p=1.0, max_frac=0.4, fill=0.0)
    for o, xi in zip(out, x):
        erased = o[0] == 0
        assert erased.any()
        rows, cols = erased.any(1).nonzero().ravel(), erased.any(0).nonzero().ravel()
        # the erased pixels form one full rectangle, no side longer than 40% of 28 (+1)
        assert erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        assert erased.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert rows.max() - rows.min() + 1 <= 12 and cols.max() - cols.min() + 1 <= 12
        assert torch.equal(o[0][~erased], xi[0][~erased])
    assert torch.equal(random_erasing(x, gen(), p=0.0), x)


@pytest.mark.parametrize("bad", [torch.zeros(28, 28), torch.zeros(3, 28, 28), "not a tensor"])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="N×C×H×W"):
        random_crop(bad, 2, gen())
    with pytest.raises(ValueError, match="N×C×H×W"):
        Augmentation(hflip=True)(bad, gen())
