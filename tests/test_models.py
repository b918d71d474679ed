"""The networks: output shapes and the parameter counts the report quotes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hw3.nn.models import CNN, MLP, BonusCNN, MultiMNISTNet, WideCNN, count_parameters


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small tensors, no thread pool


@pytest.mark.parametrize("n", [1, 5])
def test_mlp_output_shape(n):
    model = MLP()
    assert model(torch.randn(n, 1, 28, 28)).shape == (n, 10)
    assert model(torch.randn(n, 784)).shape == (n, 10)  # it flattens


@pytest.mark.parametrize("n", [1, 5])
def test_cnn_output_shape(n):
    assert CNN()(torch.randn(n, 1, 28, 28)).shape == (n, 10)


def test_cnn_feature_map_is_64x3x3():
    assert CNN().features(torch.randn(2, 1, 28, 28)).shape == (2, 64, 3, 3)


def test_cnn_last_layer_is_linear_576_to_10():
    last = CNN().classifier
    assert isinstance(last, nn.Linear)
    assert (last.in_features, last.out_features) == (576, 10)
    assert [m for m in CNN().modules() if isinstance(m, nn.Linear)] and \
        sum(isinstance(m, nn.Linear) for m in CNN().modules()) == 1


@pytest.mark.parametrize("n", [1, 4])
def test_multimnist_output_shapes(n):
    left, right = MultiMNISTNet()(torch.randn(n, 1, 36, 36))
    assert left.shape == (n, 10) and right.shape == (n, 10)


def test_multimnist_heads_differ():
    torch.manual_seed(0)
    left, right = MultiMNISTNet()(torch.randn(3, 1, 36, 36))
    assert not torch.equal(left, right)


@pytest.mark.parametrize("make", [BonusCNN, WideCNN])
@pytest.mark.parametrize("kwargs", [{}, {"width": 4}, {"width": 4, "batchnorm": False}, {"width": 4, "dropout": 0.3}])
def test_bonus_networks_output_shape(make, kwargs):
    model = make(**kwargs)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    model.eval()
    assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def test_bonus_cnn_variants():
    """batchnorm=True: a BatchNorm after every conv (whose bias it makes redundant); batchnorm=False: none."""
    plain = BonusCNN(width=8, batchnorm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Conv2d))
    bn = BonusCNN(width=8)
    convs = [m for m in bn.modules() if isinstance(m, nn.Conv2d)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == len(convs) > 0
    assert all(m.bias is None for m in convs)
    assert count_parameters(BonusCNN(width=16)) > count_parameters(BonusCNN(width=8))


def test_bonus_cnn_dropout_acts_in_train_mode_only():
    torch.manual_seed(0)
    model = BonusCNN(width=4, dropout=0.5)
    x = torch.randn(2, 1, 28, 28)
    model.train()
    assert not torch.equal(model(x), model(x)), "dropout=0.5 must randomise the train-mode output"
    model.eval()
    assert torch.equal(model(x), model(x)), "the eval-mode output must be deterministic"
    model = BonusCNN(width=4, dropout=0.0).train()
    model.features.eval()  # BatchNorm aside, no dropout means no randomness
    assert torch.equal(model(x), model(x)), "dropout=0 must not randomise the output"


def test_wide_cnn_layout():
    """Seven 3×3 convs of widths w, 2w, 2w, 4w, 4w, 8w, 8w, three 2×2 pools (28 → 3), a BN after
    every conv, and a linear layer on the 8w globally max-pooled features."""
    model = WideCNN(width=4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [4, 8, 8, 16, 16, 32, 32]
    assert all(m.kernel_size == (3, 3) and m.padding == (1, 1) and m.bias is None for m in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == len(convs)
    assert model.features(torch.randn(2, 1, 28, 28)).shape == (2, 32, 3, 3)
    plain = WideCNN(width=4, batchnorm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Conv2d))


def test_wide_cnn_parameter_count_follows_its_layout():
    w = 32
    convs = [(1, w), (w, 2 * w), (2 * w, 2 * w), (2 * w, 4 * w), (4 * w, 4 * w), (4 * w, 8 * w), (8 * w, 8 * w)]
    expected = sum(9 * a * b + 2 * b for a, b in convs) + 8 * w * 10 + 10  # conv weights, BN scale and shift, linear
    assert count_parameters(WideCNN(width=w)) == expected == 1_165_930


@pytest.mark.parametrize("model, expected", [(MLP, 89_610), (CNN, 29_066), (MultiMNISTNet, 42_350)])
def test_parameter_counts(model, expected):
    assert count_parameters(model()) == expected


def test_count_parameters_skips_frozen():
    model = MLP()
    for p in model.net[1].parameters():
        p.requires_grad_(False)
    assert count_parameters(model) == 89_610 - (784 * 100 + 100)


@pytest.mark.parametrize("make", [MLP, CNN, MultiMNISTNet, BonusCNN, WideCNN])
def test_models_are_seeded_by_the_caller(make):
    """The initial weights follow the caller's torch seed: same seed, same weights; another seed, other weights."""
    def weights(seed):
        torch.manual_seed(seed)
        return [p.detach().clone() for p in make().parameters()]

    a, b, c = weights(3), weights(3), weights(4)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a, b)), "same seed must give the same initial weights"
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a, c)), "another seed must give other initial weights"


def test_multiply_adds_counts_each_layer_by_hand():
    from hw3.nn.models import multiply_adds

    assert multiply_adds(MLP(), (1, 28, 28)) == 784 * 100 + 100 * 100 + 100 * 10
    # three 3×3 convolutions at 28², 14² and 7² (padding 1), then the linear classifier
    convs = 28 * 28 * 16 * (1 * 9) + 14 * 14 * 32 * (16 * 9) + 7 * 7 * 64 * (32 * 9)
    linear = sum(m.in_features * m.out_features for m in CNN().modules() if isinstance(m, nn.Linear))
    assert multiply_adds(CNN(), (1, 28, 28)) == convs + linear
