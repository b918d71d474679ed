"""The networks of Parts 2, 3 and the bonus, and counters of their parameters and of their computation."""

from __future__ import annotations

import torch
from torch import nn

from hw3.store.fingerprint import Table


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def multiply_adds(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of the convolutions and linear layers in one forward pass of one `input_shape` example."""
    total = 0

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):  # each output value: in_channels × kernel area products
            total += output.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        else:
            total += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return total


class MLP(nn.Module):
    """784 → 100 → 100 → 10 with ReLU. Flattens its input, so it takes N×1×28×28 or N×784."""

    def __init__(self, in_features: int = 28 * 28, hidden: int = 100, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    # padding=1 keeps H×W through the 3×3 conv, so only the pools shrink the map.
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]


class CNN(nn.Module):
    """Three 3×3 conv blocks (16, 32, 64 channels) + one linear layer: 28→14→7→3, so 64·3·3 = 576 features."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(*_conv_block(1, 16), *_conv_block(16, 32), *_conv_block(32, 64))
        self.classifier = nn.Linear(64 * 3 * 3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class MultiMNISTNet(nn.Module):
    """Shared conv encoder with one linear head per digit (left = top-left, right = bottom-right).

    The encoder ends in ReLU after its Linear(720, 50): the assignment's figure leaves it open, and
    without a nonlinearity the encoder's last layer and each head would collapse into one linear map.
    """

    def __init__(self, num_classes: int = 10, latent: int = 50):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 10, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),   # 36 → 32 → 16
            nn.Conv2d(10, 20, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),  # 16 → 12 → 6
            nn.Flatten(),
            nn.Linear(20 * 6 * 6, latent), nn.ReLU(),
        )
        self.left_head = nn.Linear(latent, num_classes)
        self.right_head = nn.Linear(latent, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.left_head(z), self.right_head(z)


class BonusCNN(nn.Module):
    """The bonus model: a VGG-style BatchNorm CNN with `width` channels in its first layer.

    28×28: one conv (w) → pool → 14×14: two convs (2w) → pool → 7×7: two convs (4w) → pool → 3×3,
    then dropout and a linear classifier on the 4w·3·3 features. Only one conv runs at full
    resolution, where convolutions cost the most, so a CPU epoch stays short.
    `batchnorm=False` and `dropout=0` give plainer variants.
    """

    def __init__(self, width: int = 16, batchnorm: bool = True, dropout: float = 0.0, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c_out, convs in ((width, 1), (2 * width, 2), (4 * width, 2)):
            for _ in range(convs):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)]
                layers += [nn.BatchNorm2d(c_out)] if batchnorm else []
                layers += [nn.ReLU(inplace=True)]
                c_in = c_out
            layers += [nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * 3 * 3, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class WideCNN(nn.Module):
    """The bonus's wide net, after the airbench speed-run networks: a stem and three blocks of
    conv → max-pool → BN → ReLU → conv → BN → ReLU, then a global max-pool and a linear classifier.

    Widths w, 2w, 4w, 8w (w = 32: 1.17M parameters); 28 → 14 → 7 → 3. Pooling right after each
    block's first conv halves the cost of everything after it, and the global max-pool lets the last
    block see the whole garment. ReLU rather than airbench's GELU: on our CPU, bf16 GELU made an
    epoch about 1.3× slower. `batchnorm` and `dropout` mirror `BonusCNN`'s signature.
    """

    def __init__(self, width: int = 32, batchnorm: bool = True, dropout: float = 0.0, num_classes: int = 10):
        super().__init__()

        def conv(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)]

        def norm_act(c: int) -> list[nn.Module]:
            return [*([nn.BatchNorm2d(c)] if batchnorm else []), nn.ReLU(inplace=True)]

        layers = [*conv(1, width), *norm_act(width)]
        c_in = width
        for c_out in (2 * width, 4 * width, 8 * width):
            layers += [*conv(c_in, c_out), nn.MaxPool2d(2), *norm_act(c_out), *conv(c_out, c_out), *norm_act(c_out)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# The bonus models by the name a `BonusConfig.model` uses; declared per experiment like `MODELS`.
BONUS_MODELS: dict[str, type[nn.Module]] = Table({"bn-cnn": BonusCNN, "wide": WideCNN}, name="models.BONUS_MODELS")


# The Part 2 models by the name a config uses. Experiments declare the entry their config selects
# (see `hw3.fingerprint`), so a change to one model leaves the other model's results current.
MODELS: dict[str, type[nn.Module]] = Table({"mlp": MLP, "cnn": CNN}, name="models.MODELS")


def build(name: str) -> nn.Module:
    """A fresh Part 2 model ('mlp' or 'cnn'); the caller seeds torch first."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name]()
