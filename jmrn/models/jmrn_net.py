"""JMRN (Shah et al., WACV 2022): per-joint features, a joint selector and inter-joint reasoning."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jmrn.models.layers import conv_bn_relu, conv_relu, scaled


# CPU: joints per chunk of the Siamese extractor are chosen so that a chunk's largest activation
# (the first convolution's output) stays within about this many bytes (see JointFeatureExtractor).
CHUNK_BYTES = 6 * 2**20


class JointFeatureExtractor(nn.Module):
    """Per-joint motion features r_j from each joint's C-channel PoTion map.

    Siamese: one set of weights for all joints. Non-Siamese: separate weights per joint, run
    together as grouped convolutions (the paper's ablation uses narrower and shallower ones:
    ``width`` < 1 and ``layers`` = 2, i.e. only the two stride-2 convolutions, so the output
    keeps its resolution). ``dropout``: Dropout2d after every convolution (the public model's
    placement).

    How the Siamese extractor's batch is arranged depends on the device (``joints_per_chunk``,
    None = automatic). On a CPU it runs on chunks of a few joints at a time (N*k samples, k
    chosen so the first activation is at most ``CHUNK_BYTES``), each laid out channels-last,
    oneDNN's native layout, with its weights converted once per pass; the chunks' outputs are
    gathered pixels-last (N x h' x w' x J x D), which the compression and the selector read
    without copies. The folded N*J batch instead makes each activation about 200 MB (16 samples
    x 18 joints x 128 x 32 x 43 floats at 64 x 86). Blocks that large come as fresh pages from
    the kernel on every step under glibc's default malloc, which training processes avoid by
    keeping freed memory (jmrn.device.keep_freed_memory); chunks still save the copies and
    layout reorders around the convolutions, and hold far less memory (docs/benchmarks.md). On
    a GPU the folded batch stays: one large kernel per layer keeps the device busy, where
    chunks would launch J/k times as many smaller kernels (not measured; no GPU was available).
    The extractor's numbers are the same either way, up to float summation order: it has no
    batch statistics (convolution + ReLU; the input BatchNorm runs on the whole batch before
    it), each sample-joint is computed alone, and Dropout2d's masks are drawn for the whole fold
    in the folded order before chunking. (Under bf16 autocast the layers after it see another
    memory layout, so the whole model's bf16 rounding differs between the two.)
    """

    def __init__(self, joints: int, channels: int, width: float, siamese: bool = True,
                 layers: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if layers not in (2, 4):
            raise ValueError(f"extractor_layers must be 2 or 4, got {layers}")
        self.joints, self.siamese = joints, siamese
        self.joints_per_chunk: int | None = None  # None: by device (chunks on CPU, folded elsewhere)
        g = 1 if siamese else joints
        c1, c2 = scaled(128, width) * g, scaled(256, width) * g
        self.out_channels = c2 // g
        p = dropout
        convs = [conv_relu(channels * g, c1, stride=2, groups=g, dropout=p),
                 conv_relu(c1, c1, groups=g, dropout=p),
                 conv_relu(c1, c2, stride=2, groups=g, dropout=p),
                 conv_relu(c2, c2, groups=g, dropout=p)]
        self.net = nn.Sequential(*(convs if layers == 4 else [convs[0], convs[2]]))

    def chunk_joints(self, x: torch.Tensor) -> int:
        """Joints per chunk for input x (N x J x C x H x W): J (folded) unless on a CPU."""
        n, j, _, h, w = x.shape
        if self.joints_per_chunk is not None:
            return max(1, min(j, self.joints_per_chunk))
        if x.device.type != "cpu":
            return j
        first = self.net[0][0]  # N x c1 x ceil(H/2) x ceil(W/2) per joint
        per_joint = n * first.out_channels * -(-h // 2) * -(-w // 2) * x.element_size()
        return max(1, min(j, CHUNK_BYTES // per_joint))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, j, c, h, w = x.shape  # N x J x C x H x W
        if not self.siamese:
            r = self.net(x.reshape(n, j * c, h, w))  # N x (J*D) x h' x w'
            return r.reshape(n, j, self.out_channels, *r.shape[-2:])
        k = self.chunk_joints(x)
        if k >= j:
            r = self.net(x.reshape(n * j, c, h, w))  # (N*J) x D x h' x w'
            return r.reshape(n, j, self.out_channels, *r.shape[-2:])  # N x J x D x h' x w'
        masks = self._dropout_masks(n * j, x)  # each (N*J) x D_l x 1 x 1, in the fold's order
        weights, parts = self._channels_last_weights(x), []
        for a, chunk in zip(range(0, j, k), x.permute(0, 1, 3, 4, 2).split(k, dim=1)):
            rows = [m.reshape(n, j, *m.shape[1:])[:, a:a + k].flatten(0, 1) for m in masks]
            part = chunk.reshape(-1, h, w, c).permute(0, 3, 1, 2)  # (N*k) x C x H x W
            part = part.contiguous(memory_format=torch.channels_last)  # one copy at most
            parts.append(self._run(part, rows, weights))  # (N*k) x D x h' x w', channels-last
        return _JointsPixelsLast.apply(n, *parts)  # N x J x D x h' x w', stored N x h' x w' x J x D

    def _dropout_masks(self, rows: int, x: torch.Tensor) -> list[torch.Tensor]:
        """Dropout2d's scaled masks for a batch of ``rows``, drawn as the folded forward draws them."""
        if not self.training:
            return []
        dtype = _autocast_dtype(x) or x.dtype
        masks = []
        for block in self.net:
            conv = block[0]
            for layer in block:
                if isinstance(layer, nn.Dropout2d) and layer.p > 0:
                    keep = 1 - layer.p  # as F.dropout2d: bernoulli(1 - p) / (1 - p); p = 1 draws nothing
                    noise = torch.zeros(rows, conv.out_channels, 1, 1, dtype=dtype, device=x.device)
                    masks.append(noise.bernoulli_(keep).div_(keep) if keep > 0 else noise)
        return masks

    def _channels_last_weights(self, x: torch.Tensor) -> dict[nn.Conv2d, torch.Tensor]:
        """Each convolution's weight, channels-last and, if float32 under autocast, in autocast's
        dtype (as autocast would cast it): converted once per forward pass (and its gradient once
        per backward pass) rather than by every chunk's convolution."""
        cast = _autocast_dtype(x)
        weights = {}
        for block in self.net:
            weight = block[0].weight
            dtype = cast if weight.dtype == torch.float32 else None
            weights[block[0]] = weight.to(dtype=dtype, memory_format=torch.channels_last)
        return weights

    def _run(self, x: torch.Tensor, masks: list[torch.Tensor],
             weights: dict[nn.Conv2d, torch.Tensor]) -> torch.Tensor:
        """The layers on one chunk, with Dropout2d applied from the pre-drawn ``masks`` and each
        convolution run with its weight from ``weights``."""
        drawn = iter(masks)
        for block in self.net:
            for layer in block:
                if isinstance(layer, nn.Dropout2d):
                    x = x * next(drawn) if self.training and layer.p > 0 else x
                elif isinstance(layer, nn.Conv2d):
                    x = F.conv2d(x, weights[layer], layer.bias, layer.stride, layer.padding,
                                 layer.dilation, layer.groups)
                else:
                    x = layer(x)
        return x


def _autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype autocast casts float32 operands to on x's device, None when autocast is off."""
    dev = x.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None


class _JointsPixelsLast(torch.autograd.Function):
    """Gathers the chunks' channels-last outputs into one N x h' x w' x J x D tensor, returned as
    its N x J x D x h' x w' view. That layout is what the compression (a Linear over D) and the
    selector's 1x1 convolutions (channels-last over J*D) read without a copy; the gradient goes
    back to each chunk channels-last, the layout its convolutions run in."""

    @staticmethod
    def forward(ctx, n: int, *parts: torch.Tensor) -> torch.Tensor:
        d, h, w = parts[0].shape[1:]
        ctx.joints = [p.shape[0] // n for p in parts]
        out = parts[0].new_empty(n, h, w, sum(ctx.joints), d)
        for part, k, place in zip(parts, ctx.joints, out.split(ctx.joints, dim=3)):
            # part: (N*k) x D x h' x w'; place: N x h' x w' x k x D
            place.copy_(part.view(n, k, d, h, w).permute(0, 3, 4, 1, 2))
        return out.permute(0, 3, 4, 1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        n, _, d, h, w = grad.shape  # N x J x D x h' x w'
        grads = []
        for k, part in zip(ctx.joints, grad.split(ctx.joints, dim=1)):
            g = torch.empty(n * k, d, h, w, dtype=grad.dtype, device=grad.device,
                            memory_format=torch.channels_last)
            g.view(n, k, d, h, w).copy_(part)
            grads.append(g)
        return (None, *grads)


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
        # 1x1 convolution; its ReLU is not in place, since in place on the Linear's output (a view
        # when the input has more than two dimensions) costs three copies in the backward pass
        self.compress = nn.Sequential(nn.Linear(feat, c_dim), nn.ReLU())
        self.selector = JointSelector(joints, feat, scaled(256, width), hard=hard_selector)
        self.head = ReasoningHead(joints, c_dim, width, num_classes, dropout)
        self.projection = ProjectionHead(feat, scaled(proj_dim, width))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        n, j, c, h, w = x.shape  # N x J x C x H x W
        x = self.input_norm(x.reshape(n, j * c, h, w)).reshape(n, j, c, h, w)
        r = self.extractor(x)  # N x J x D x h' x w'
        pixels = r.permute(0, 3, 4, 1, 2)  # N x h' x w' x J x D, contiguous from CPU chunks
        comp = self.compress(pixels).permute(0, 3, 4, 1, 2)  # N x J x c_dim x h' x w'
        if self.reweight:
            weights = self.selector(r)  # N x J
        else:
            weights = torch.ones(n, j, dtype=x.dtype, device=x.device)
        logits = self.head(comp * weights[:, :, None, None, None])
        return {"logits": logits, "joint_weights": weights, "embeddings": self.projection(r)}
