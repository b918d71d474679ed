"""Batched augmentations (hw3.augment): shapes, seeded determinism, and what each one does to pixels."""

from __future__ import annotations

import pytest
import torch

from hw3.nn.augment import Augmentation, random_crop, random_erasing, random_hflip


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


@pytest.mark.parametrize("bad, shown", [(torch.zeros(28, 28), r"torch.Size\(\[28, 28\]\)"),
                                        (torch.zeros(3, 28, 28), r"torch.Size\(\[3, 28, 28\]\)"), ("not a tensor", "str")])
def test_bad_input_is_a_clear_error(bad, shown):
    with pytest.raises(ValueError, match=f"N×C×H×W tensor, got {shown}$"):
        random_crop(bad, 2, gen())
    with pytest.raises(ValueError, match="N×C×H×W"):
        Augmentation(hflip=True)(bad, gen())


def crop_offsets(x: torch.Tensor, out: torch.Tensor, padding: int, fill: float) -> list[tuple[int, int]]:
    """The (dy, dx) shift of each cropped sample (the first that reproduces it)."""
    offsets = []
    for i in range(len(x)):
        padded = torch.nn.functional.pad(x[i:i + 1], (padding,) * 4, value=fill)[0]
        h, w = x.shape[-2:]
        found = [(dy, dx) for dy in range(-padding, padding + 1) for dx in range(-padding, padding + 1)
                 if torch.equal(padded[:, padding + dy:padding + dy + h, padding + dx:padding + dx + w], out[i])]
        assert found, f"sample {i} is not a shifted copy of its input"
        offsets.append(found[0])
    return offsets


@pytest.mark.parametrize("padding", [1, 2])
def test_random_crop_draws_every_shift_in_the_padding_range(padding):
    x = batch(200)
    offsets = crop_offsets(x, random_crop(x, padding, gen(), fill=-7.0), padding, -7.0)
    dys, dxs = {dy for dy, _ in offsets}, {dx for _, dx in offsets}
    expected = set(range(-padding, padding + 1))
    assert dys == expected and dxs == expected, f"RandomCrop(padding={padding}) shifts by every amount in ±{padding}, got {dys}, {dxs}"


def test_random_erasing_rectangles_vary_in_size_and_place():
    x = batch(300) + 1.0
    out = random_erasing(x, gen(), p=1.0, max_frac=0.4, fill=0.0)
    heights, widths, tops, lefts = [], [], [], []
    for o in out:
        erased = o[0] == 0
        rows, cols = erased.any(1).nonzero().ravel(), erased.any(0).nonzero().ravel()
        heights.append(int(rows.max() - rows.min() + 1)), widths.append(int(cols.max() - cols.min() + 1))
        tops.append(int(rows.min())), lefts.append(int(cols.min()))
    assert min(heights) == 1 and max(heights) >= 10, f"erased heights span 1 … 0.4·28, got {min(heights)} … {max(heights)}"
    assert min(widths) == 1 and max(widths) >= 10, f"erased widths span 1 … 0.4·28, got {min(widths)} … {max(widths)}"
    assert min(tops) == 0 and max(tops) >= 20, "erased rectangles start anywhere, from the top row down"
    assert min(lefts) == 0 and max(lefts) >= 20, "erased rectangles start anywhere, from the left column on"
    bottoms = [t + h for t, h in zip(tops, heights)]
    assert max(bottoms) == 28, "an erased rectangle can reach the last row"


def test_random_erasing_probability():
    x = batch(400) + 1.0
    erased = (random_erasing(x, gen(), p=0.25, fill=0.0) == 0).flatten(1).any(1)
    assert 60 < erased.sum() < 140, f"about a quarter of the images are erased, got {int(erased.sum())}/400"


def test_augmentation_applies_crop_flip_and_erasing_with_its_settings():
    x = batch(64) + 1.0
    crop = Augmentation(crop_padding=2, fill=-3.0)(x, gen(2))
    assert (crop == -3.0).any() and not torch.equal(crop, x), "crop_padding pads with the fill value and shifts"
    flip = Augmentation(hflip=True)(x, gen(2))
    assert torch.equal(flip, random_hflip(x, gen(2))), "hflip mirrors half the images"
    erase = Augmentation(erasing=1.0, fill=-5.0)(x, gen(2))
    assert ((erase == -5.0).flatten(1).any(1)).all(), "erasing=1.0 erases every image with the fill value"
    both = Augmentation(crop_padding=1, hflip=True, erasing=0.5)
    assert both.active and Augmentation(erasing=0.1).active and Augmentation(crop_padding=1).active and Augmentation(hflip=True).active


def test_defaults_pad_with_zero_and_erase_half_the_images_with_small_boxes():
    x = batch(400) + 1.0
    cropped = random_crop(x, 2, gen())
    assert ((cropped == 0).flatten(1).any(1)).any() and cropped.min() == 0, "random_crop pads with 0 by default"
    out = random_erasing(x, gen())
    erased = out == 0
    hit = erased.flatten(1).any(1)
    assert 140 < hit.sum() < 260, f"random_erasing erases about half the images by default (p=0.5), got {int(hit.sum())}/400"
    rows = erased[:, 0].any(2).sum(1)
    assert rows.max() <= 12, "by default an erased box is at most 0.4·28 (+1) rows high"
    assert torch.equal(out[~erased], x[~erased]) and out.min() == 0, "random_erasing fills with 0 by default"
