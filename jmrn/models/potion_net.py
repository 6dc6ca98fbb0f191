"""PoTion baseline (Choutas et al. 2018): all joints' maps as one multi-channel image."""
from __future__ import annotations

import torch
from torch import nn

from jmrn.models.layers import conv_bn_relu, scaled


class PotionNet(nn.Module):
    """6 conv layers (3 with stride 2) -> global average pool -> linear classifier.

    ``extra_layers`` = 3 gives the paper's "deeper baseline" (about JMRN's parameter count).
    ``dropout``: Dropout2d after every convolution, as the public model does when switched on.
    """

    def __init__(self, joints: int, channels: int, num_classes: int, width: float = 1.0,
                 extra_layers: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        c1, c2, c3 = scaled(128, width), scaled(256, width), scaled(512, width)
        p = dropout
        layers = [
            conv_bn_relu(joints * channels, c1, stride=2, dropout=p), conv_bn_relu(c1, c1, dropout=p),
            conv_bn_relu(c1, c2, stride=2, dropout=p), conv_bn_relu(c2, c2, dropout=p),
            conv_bn_relu(c2, c3, stride=2, dropout=p), conv_bn_relu(c3, c3, dropout=p),
        ]
        layers += [conv_bn_relu(c3, c3, dropout=p) for _ in range(extra_layers)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        n, j, c, h, w = x.shape  # N x J x C x H x W
        f = self.pool(self.features(x.reshape(n, j * c, h, w))).flatten(1)  # N x 512
        return {"logits": self.classifier(f)}
