"""Part 3: make_new_sample, its batched version, the MultiMNIST datasets and a training step."""

from __future__ import annotations

import pytest
import torch

from hw3.nn import data, models, multimnist_data
from hw3.nn.multimnist_data import make_new_sample, make_new_samples


def digit(value: float, seed: int = 0) -> torch.Tensor:
    return (torch.rand(28, 28, generator=torch.Generator().manual_seed(seed)) * value)


def test_placement_top_left_and_bottom_right():
    x1, x2 = torch.zeros(28, 28), torch.zeros(28, 28)
    x1[0, 0], x2[27, 27] = 1.0, 2.0
    canvas = make_new_sample(x1, x2)
    assert canvas.shape == (36, 36)
    assert canvas[0, 0] == 1.0 and canvas[35, 35] == 2.0
    assert canvas.sum() == 3.0


def test_each_digit_is_copied_where_it_does_not_overlap():
    x1, x2 = digit(1.0, 1), digit(1.0, 2)
    canvas = make_new_sample(x1, x2)
    assert torch.equal(canvas[:8, :28], x1[:8])           # rows of x1 above the overlap
    assert torch.equal(canvas[:28, :8], x1[:, :8])        # columns of x1 left of the overlap
    assert torch.equal(canvas[28:, 8:], x2[20:])          # rows of x2 below the overlap
    assert torch.equal(canvas[8:, 28:], x2[:, 20:])       # columns of x2 right of the overlap
    assert torch.all(canvas[:8, 28:] == 0) and torch.all(canvas[28:, :8] == 0)  # the empty corners


def test_overlap_takes_the_max():
    x1, x2 = digit(1.0, 1), digit(1.0, 2)
    canvas = make_new_sample(x1, x2)
    assert torch.equal(canvas[8:28, 8:28], torch.maximum(x1[8:, 8:], x2[:20, :20]))


def test_channel_dim_and_dtype_are_kept():
    x1 = (digit(255.0, 1)).to(torch.uint8)
    x2 = (digit(255.0, 2)).to(torch.uint8)
    assert make_new_sample(x1[None], x2[None]).shape == (1, 36, 36)
    assert make_new_sample(x1, x2).dtype == torch.uint8


@pytest.mark.parametrize("shape", [(27, 28), (28, 28, 1), (2, 28, 28), (36, 36), (784,)])
def test_wrong_shapes_are_clear_errors(shape):
    with pytest.raises(ValueError, match="28×28"):
        make_new_sample(torch.zeros(shape), torch.zeros(28, 28))
    with pytest.raises(ValueError, match="28×28"):
        make_new_sample(torch.zeros(28, 28), torch.zeros(shape))


def test_non_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="^x1 must be a torch.Tensor, got list"):
        make_new_sample([[0.0] * 28] * 28, torch.zeros(28, 28))
    with pytest.raises(TypeError, match="^x2 must be a torch.Tensor, got list"):
        make_new_samples(torch.zeros(28, 28), [[0.0] * 28] * 28)


@pytest.mark.parametrize("fn", [make_new_sample, make_new_samples])
def test_shape_errors_name_the_argument(fn):
    with pytest.raises(ValueError, match="^x1 must be a 28×28"):
        fn(torch.zeros(27, 28), torch.zeros(28, 28))
    with pytest.raises(ValueError, match="^x2 must be"):
        fn(torch.zeros(28, 28), torch.zeros(27, 28))


def test_mixed_dtypes_are_refused_not_cast():
    x1, x2 = (digit(255.0, 1)).to(torch.uint8), digit(200.0, 2)
    with pytest.raises(ValueError, match="same dtype"):  # a silent cast would erase a float digit in uint8
        make_new_sample(x1, x2)
    assert make_new_sample(x1, x2.to(torch.uint8)).dtype == torch.uint8


def test_batched_version_matches_the_per_sample_function():
    x1 = torch.rand(10, 28, 28, generator=torch.Generator().manual_seed(3))
    x2 = torch.rand(10, 28, 28, generator=torch.Generator().manual_seed(4))
    batched = make_new_samples(x1, x2)
    assert batched.shape == (10, 36, 36)
    for i in range(10):
        assert torch.equal(batched[i], make_new_sample(x1[i], x2[i]))
    with pytest.raises(ValueError, match="same shape"):
        make_new_samples(x1, x2[:5])


def test_random_pairs_use_each_image_once_per_side():
    left, right = multimnist_data.random_pairs(1000, seed=0)
    assert sorted(left.tolist()) == list(range(1000)) == sorted(right.tolist()), "each image once on each side"
    again = multimnist_data.random_pairs(1000, seed=0)
    assert torch.equal(left, again[0]) and torch.equal(right, again[1]), "the pairing is fixed by the seed"


def test_random_pairs_are_random_independent_and_seeded():
    left, right = multimnist_data.random_pairs(1000, seed=0)
    assert not torch.equal(left, torch.arange(1000)) and not torch.equal(right, torch.arange(1000)), "both sides are shuffled"
    assert (left == right).sum() < 10, "the two sides are independent permutations (about one fixed point expected)"
    other = multimnist_data.random_pairs(1000, seed=1)
    assert not torch.equal(left, other[0]) and not torch.equal(right, other[1]), "another seed gives another pairing"
    assert len(multimnist_data.random_pairs(7, seed=0)[0]) == 7


@pytest.fixture(scope="module")
def splits():
    from conftest import missing_data_reason

    if missing_data_reason("MNIST"):
        pytest.skip(missing_data_reason("MNIST"))
    return multimnist_data.multimnist_splits()


@pytest.mark.needs_data
def test_dataset_sizes(splits):
    assert len(splits.train[0]) + len(splits.val[0]) == 60_000
    assert (len(splits.train[0]), len(splits.val[0]), len(splits.test[0])) == (50_000, 10_000, 10_000)
    for split in (splits.train, splits.val, splits.test):
        assert split[0].shape[1:] == (36, 36) and split[0].dtype == torch.uint8
        assert len(split[1]) == len(split[2]) == len(split[0])
    ds = multimnist_data.as_tensor_dataset(splits.test)
    image, left, right = ds[0]
    assert image.shape == (1, 36, 36) and 0 <= image.min() and image.max() <= 1


@pytest.mark.needs_data
def test_canvases_come_from_the_right_mnist_split(splits):
    """Rebuild canvases from their sources: train/val from MNIST train (disjoint images), test from MNIST test."""
    train_images, train_labels = data.load_raw("MNIST", train=True)
    test_images, test_labels = data.load_raw("MNIST", train=False)
    train_idx, val_idx = data.train_val_indices(60_000, 10_000, 0)
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    for split, images, labels, seed in ((splits.train, train_images[train_idx], train_labels[train_idx], 0),
                                        (splits.val, train_images[val_idx], train_labels[val_idx], 1),
                                        (splits.test, test_images, test_labels, 2)):
        left, right = multimnist_data.random_pairs(len(images), seed)
        for i in (0, 1, len(images) - 1):
            assert torch.equal(split[0][i], make_new_sample(images[left[i]], images[right[i]]))
            assert split[1][i] == labels[left[i]] and split[2][i] == labels[right[i]]


def test_the_two_head_net_learns_both_digits_with_fit():
    """fit on the two-head net (the mean of the two cross-entropies) lowers the loss of each head."""
    from hw3.nn import train

    torch.manual_seed(0)
    net = models.MultiMNISTNet()
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(32, 1, 36, 36, generator=g), torch.randint(0, 10, (32,), generator=g), torch.randint(0, 10, (32,), generator=g))
    before = train.evaluate(net, data, heads=multimnist_data.HEADS).metrics
    train.fit(net, torch.optim.Adam(net.parameters(), lr=3e-3), data, epochs=8, batch_size=16, seed=0, heads=multimnist_data.HEADS)
    after = train.evaluate(net, data, heads=multimnist_data.HEADS).metrics
    for head in multimnist_data.HEADS:
        assert after[f"loss_{head}"] < before[f"loss_{head}"], f"training must lower the {head} head's loss"
