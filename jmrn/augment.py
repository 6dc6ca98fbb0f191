"""Pose-aware augmentation (paper §3.3) and cropping, applied directly to PoTion maps.

Every joint's map is moved by one affine transform (the same for all its C channels): a global
jitter shared by all joints, a group jitter shared by the joints of a body part (head, arms,
legs; the torso stays), an optional rotation about the map centre, and a horizontal flip that
also swaps left and right joints. Everything is batched in one ``grid_sample`` call.

Cropping (``augment.crop``) comes first, as in the public loaders: a random window of each
training sample (both augmented views share it), the centred window at validation and test.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from jmrn.errors import UserError
from jmrn.pose.skeleton import GROUPS, JITTERED_GROUPS, JOINTS, flip_permutation, group_index


@dataclass(frozen=True)
class AugmentConfig:
    global_jitter: float = 7.0  # beta, pixels of the PoTion map
    group_jitter: float = 4.0  # gamma, pixels
    flip: bool = True
    rotation: float = 0.0  # max degrees; 0 = off


def joint_shifts(n: int, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Per-sample, per-joint translations in pixels (N x J x 2): global + group jitter."""
    shift = (torch.rand(n, 1, 2, generator=generator) * 2 - 1) * cfg.global_jitter
    shift = shift.expand(n, len(JOINTS), 2).clone()
    groups = torch.tensor(group_index())
    group_shift = (torch.rand(n, len(GROUPS), 2, generator=generator) * 2 - 1) * cfg.group_jitter
    jittered = torch.tensor([name in JITTERED_GROUPS for name in GROUPS])
    group_shift = group_shift * jittered[None, :, None]
    return shift + group_shift[:, groups]


def transform_maps(x: torch.Tensor, shifts: torch.Tensor, flip: torch.Tensor,
                   angle_deg: torch.Tensor) -> torch.Tensor:
    """Apply per-joint shifts (N x J x 2 px), per-sample flips (N bool) and rotations (N deg).

    x: N x J x C x H x W. Pixels moved in from outside the map are zero."""
    n, j, c, h, w = x.shape
    theta_rad = torch.deg2rad(angle_deg.to(x.dtype))
    cos, sin = torch.cos(theta_rad), torch.sin(theta_rad)
    sx = torch.where(flip, -1.0, 1.0).to(x.dtype)
    # Output -> input sampling: undo the shift, then the rotation, then the flip.
    # Normalised coordinates: u = 2x/W - 1; a shift of d pixels is 2d/W in u.
    a = torch.zeros(n, j, 2, 3, dtype=x.dtype, device=x.device)
    aspect = w / h
    a[..., 0, 0] = (sx * cos)[:, None]
    a[..., 0, 1] = (sx * sin / aspect)[:, None]
    a[..., 1, 0] = (-sin * aspect)[:, None]
    a[..., 1, 1] = cos[:, None]
    t = torch.stack([-2 * shifts[..., 0] / w, -2 * shifts[..., 1] / h], dim=-1)  # N x J x 2
    a[..., :, 2] = (a[..., :, :2] @ t[..., None])[..., 0]
    grid = F.affine_grid(a.reshape(n * j, 2, 3), [n * j, c, h, w], align_corners=False)
    out = F.grid_sample(x.reshape(n * j, c, h, w), grid, mode="bilinear",
                        padding_mode="zeros", align_corners=False).reshape(n, j, c, h, w)
    if flip.any():
        perm = torch.tensor(flip_permutation(), device=x.device)
        out = torch.where(flip[:, None, None, None, None], out[:, perm], out)
    return out


def augment(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """One random pose-aware augmentation of a batch of PoTion maps (N x J x C x H x W)."""
    n = x.shape[0]
    shifts = joint_shifts(n, cfg, generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5) if cfg.flip else torch.zeros(n, dtype=torch.bool)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * cfg.rotation
    return transform_maps(x, shifts, flip.to(x.device), angle.to(x.device))


def check_crop(size: Sequence[int] | None, map_shape: Sequence[int]) -> None:
    """Refuse a crop window larger than the maps (H x W are the last two entries of the shape)."""
    if size is None:
        return
    h, w = map_shape[-2:]
    if size[0] > h or size[1] > w:
        raise UserError(f"augment.crop {size[0]} x {size[1]} is larger than the PoTion maps "
                         f"({h} x {w}); make it at most the map size or remove it")


def random_crop(x: torch.Tensor, size: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """A random H' x W' window of each sample of a batch (N x J x C x H x W), one draw each."""
    n, _, _, h, w = x.shape
    th, tw = size
    if (th, tw) == (h, w):
        return x
    top = torch.randint(0, h - th + 1, (n,), generator=generator).to(x.device)
    left = torch.randint(0, w - tw + 1, (n,), generator=generator).to(x.device)
    rows = top[:, None] + torch.arange(th, device=x.device)  # N x H'
    cols = left[:, None] + torch.arange(tw, device=x.device)  # N x W'
    sample = torch.arange(n, device=x.device)[:, None, None]
    window = x.permute(0, 3, 4, 1, 2)[sample, rows[:, :, None], cols[:, None, :]]  # N x H' x W' x J x C
    return window.permute(0, 3, 4, 1, 2).contiguous()


def center_crop(x: torch.Tensor, size: Sequence[int] | None) -> torch.Tensor:
    """The centred H' x W' window of maps (... x H x W); offsets rounded as numpy rounds
    (the public loaders' ``CenterCrop``). ``None``: the maps unchanged."""
    if size is None:
        return x
    h, w = x.shape[-2:]
    top, left = int(np.round((h - size[0]) / 2)), int(np.round((w - size[1]) / 2))
    return x[..., top:top + size[0], left:left + size[1]]
