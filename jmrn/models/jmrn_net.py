"""JMRN (Shah et al., WACV 2022): per-joint features, a joint selector and inter-joint reasoning."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jmrn.models.layers import conv_bn_relu, conv_relu, scaled


class JointFeatureExtractor(nn.Module):
    """Per-joint motion features r_j from each joint's C-channel PoTion map.

    Siamese: one set of weights for all joints, run once on the batch with joints folded in.
    Non-Siamese: separate weights per joint, run together as grouped convolutions (the paper's
    ablation uses narrower and shallower ones: ``width`` < 1 and ``layers`` = 2, i.e. only the
    two stride-2 convolutions, so the output keeps its resolution). ``dropout``: Dropout2d
    after every convolution (the public model's placement).
    """

    def __init__(self, joints: int, channels: int, width: float, siamese: bool = True,
                 layers: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if layers not in (2, 4):
            raise ValueError(f"extractor_layers must be 2 or 4, got {layers}")
        self.joints, self.siamese = joints, siamese
        g = 1 if siamese else joints
        c1, c2 = scaled(128, width) * g, scaled(256, width) * g
        self.out_channels = c2 // g
        p = dropout
        convs = [conv_relu(channels * g, c1, stride=2, groups=g, dropout=p),
                 conv_relu(c1, c1, groups=g, dropout=p),
                 conv_relu(c1, c2, stride=2, groups=g, dropout=p),
                 conv_relu(c2, c2, groups=g, dropout=p)]
        self.net = nn.Sequential(*(convs if layers == 4 else [convs[0], convs[2]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, j, c, h, w = x.shape  # N x J x C x H x W
        if self.siamese:
            r = self.net(x.reshape(n * j, c, h, w))  # (N*J) x D x h' x w'
        else:
            r = self.net(x.reshape(n, j * c, h, w))  # N x (J*D) x h' x w'
        return r.reshape(n, j, self.out_channels, *r.shape[-2:])  # N x J x D x h' x w'


class JointSelector(nn.Module):
    """Weights w_j in [0, 1] per joint from all joints' features (soft, or hard straight-through)."""

    def __init__(self, joints: int, feat: int, hidden: int, hard: bool = False,
                 temperature: float = 0.66, threshold: float = 0.5) -> None:
        super().__init__()
        self.hard, self.temperature, self.threshold = hard, temperature, threshold
        self.mix = conv_relu(joints * feat, hidden, kernel=1)
        self.fc = nn.Linear(hidden, joints)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        n, j, d, h, w = r.shape
        s = self.mix(r.reshape(n, j * d, h, w)).mean(dim=(2, 3))  # N x hidden
        logits = self.fc(s)  # N x J
        if not self.hard:
            return torch.sigmoid(logits)
        soft = torch.sigmoid(logits / self.temperature)
        hard = (soft > self.threshold).to(soft.dtype)
        return hard - soft.detach() + soft  # forward: 0/1, backward: sigmoid's gradient


class ProjectionHead(nn.Module):
    """z_j: unit-norm per-joint embeddings for the joint-contrastive loss."""

    def __init__(self, feat: int, dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feat, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(r.mean(dim=(3, 4))), dim=-1)  # N x J x dim


class ReasoningHead(nn.Module):
    """Inter-joint reasoning over the weighted, compressed joint features -> class logits.

    ``dropout``: Dropout2d after the two 3x3 convolutions, as the public model (Charades)."""

    def __init__(self, joints: int, c_dim: int, width: float, num_classes: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        c = scaled(512, width)
        self.net = nn.Sequential(
            conv_bn_relu(joints * c_dim, c, kernel=1),
            conv_bn_relu(c, c, stride=2, dropout=dropout), conv_bn_relu(c, c, dropout=dropout),
        )
        self.fc = nn.Linear(c, num_classes)

    def forward(self, weighted: torch.Tensor) -> torch.Tensor:
        n, j, d, h, w = weighted.shape  # N x J x c_dim x h' x w'
        f = self.net(weighted.reshape(n, j * d, h, w)).mean(dim=(2, 3))  # N x C
        return self.fc(f)


class JMRN(nn.Module):
    """Joint Motion Reasoning Network. Ablations: ``siamese=False`` (with a narrower, shallower
    extractor: ``extractor_width``, ``extractor_layers``) and ``reweight=False`` (w_j = 1)."""

    def __init__(self, joints: int, channels: int, num_classes: int, width: float = 1.0,
                 siamese: bool = True, reweight: bool = True, hard_selector: bool = False,
                 c_dim: int = 128, proj_dim: int = 128, extractor_width: float = 1.0,
                 extractor_layers: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.reweight = reweight
        self.input_norm = nn.BatchNorm2d(joints * channels)  # per joint and channel
        self.extractor = JointFeatureExtractor(joints, channels, width * extractor_width, siamese,
                                               extractor_layers, dropout)
        feat = self.extractor.out_channels
        c_dim = scaled(c_dim, width)
        self.compress = nn.Sequential(nn.Linear(feat, c_dim), nn.ReLU(inplace=True))  # 1x1 conv
        self.selector = JointSelector(joints, feat, scaled(256, width), hard=hard_selector)
        self.head = ReasoningHead(joints, c_dim, width, num_classes, dropout)
        self.projection = ProjectionHead(feat, scaled(proj_dim, width))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        n, j, c, h, w = x.shape  # N x J x C x H x W
        x = self.input_norm(x.reshape(n, j * c, h, w)).reshape(n, j, c, h, w)
        r = self.extractor(x)  # N x J x D x h' x w'
        comp = self.compress(r.movedim(2, -1)).movedim(-1, 2)  # N x J x c_dim x h' x w'
        if self.reweight:
            weights = self.selector(r)  # N x J
        else:
            weights = torch.ones(n, j, dtype=x.dtype, device=x.device)
        logits = self.head(comp * weights[:, :, None, None, None])
        return {"logits": logits, "joint_weights": weights, "embeddings": self.projection(r)}
