"""``openpifpaf`` backend: CIF keypoint-confidence fields of openpifpaf's network as heatmaps.

Only the network runs (batched frames, ``inference_mode``, fp16 on GPU); no pose decoding.
The CIF confidence channel of each of the 17 COCO joints is already a heatmap in which several
persons add up; it is cropped to the frame, resized into the H x W output (aspect kept) and
the neck is derived from the shoulders.

Checkpoints: ``checkpoint`` is an openpifpaf name (``shufflenetv2k16``, ..., downloaded by
openpifpaf on first use) or a local file path. openpifpaf checkpoints are whole pickled models,
so they are loaded by openpifpaf's own loader (full unpickling): use files you trust.
``checkpoint: null`` builds ``base_net`` with random weights (tests, timing).
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jmrn.pose.base import PoseBackend, letterbox_geometry, to_uint8
from jmrn.pose.skeleton import COCO17, JOINTS
from jmrn.video import iter_frame_batches

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIF_CONFIDENCE = 1  # component index of the (sigmoid) confidence in an eval-mode CIF field


@contextlib.contextmanager
def _full_unpickling() -> Iterator[None]:
    """openpifpaf calls ``torch.load(path)``, which since torch 2.6 refuses whole pickled
    models; allow full unpickling for the duration of that one (trusted) load."""
    key = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    old = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ[key]
        else:
            os.environ[key] = old


def build_network(checkpoint: str | None, base_net: str = "shufflenetv2k16") -> torch.nn.Module:
    """openpifpaf's network: from a checkpoint name / local path, or random weights."""
    import openpifpaf

    if checkpoint:
        # A local file is unpickled by openpifpaf itself; a name is downloaded by torch.hub.
        loading = _full_unpickling() if os.path.isfile(checkpoint) else contextlib.nullcontext()
        with loading:
            net, _ = openpifpaf.network.Factory(checkpoint=checkpoint).factory()
    else:
        head_metas = openpifpaf.datasets.factory("cocokp").head_metas
        net, _ = openpifpaf.network.Factory(base_name=base_net).factory(head_metas=head_metas)
    return net


class OpenPifPafBackend(PoseBackend):
    name = "openpifpaf"

    def __init__(self, height: int, width: int, batch_size: int = 8,
                 checkpoint: str | None = "shufflenetv2k16", base_net: str = "shufflenetv2k16",
                 device: str = "auto", fp16: bool = True, long_edge: int | None = None,
                 **_: Any) -> None:
        super().__init__(height, width, batch_size)
        self.checkpoint, self.base_net, self.long_edge = checkpoint, base_net, long_edge
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                                   else "cpu" if device == "auto" else device)
        self.dtype = torch.float16 if fp16 and self.device.type == "cuda" else torch.float32
        self.net = build_network(checkpoint, base_net).eval().to(self.device, self.dtype)
        self.stride = int(self.net.base_net.stride)
        cif = [i for i, h in enumerate(self.net.head_nets) if h.meta.name == "cif"]
        if not cif:
            raise ValueError(f"checkpoint {checkpoint!r} has no CIF head")
        self.cif_index = cif[0]
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def attrs(self) -> dict[str, Any]:
        return {**super().attrs(), "checkpoint": self.checkpoint or f"random {self.base_net}",
                "stride": self.stride, "long_edge": self.long_edge}

    def heatmaps(self, video: Mapping[str, Any]) -> Iterator[np.ndarray]:
        for frames in iter_frame_batches(video["path"], self.batch_size):
            yield to_uint8(self.frames_to_heatmaps(frames))

    def _prepare(self, frames: np.ndarray) -> tuple[torch.Tensor, int, int]:
        """BGR uint8 batch -> normalised RGB tensor padded to stride*k + 1; valid (h, w)."""
        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).flip(1)  # B x RGB x h x w
        x = x.to(torch.float32) / 255
        h, w = x.shape[-2:]
        if self.long_edge and max(h, w) != self.long_edge:
            scale = self.long_edge / max(h, w)
            h, w = max(1, round(h * scale)), max(1, round(w * scale))
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        ph = math.ceil((h - 1) / self.stride) * self.stride + 1
        pw = math.ceil((w - 1) / self.stride) * self.stride + 1
        return F.pad(x, (0, pw - w, 0, ph - h)), h, w

    @torch.inference_mode()
    def cif_confidence(self, frames: np.ndarray) -> torch.Tensor:
        """B x 17 x h' x w' keypoint confidences in [0, 1], cropped to the frame."""
        x, h, w = self._prepare(frames)
        heads = self.net(x.to(self.dtype))
        conf = heads[self.cif_index][:, :, CIF_CONFIDENCE].float()
        return conf[:, :, : (h - 1) // self.stride + 1, : (w - 1) // self.stride + 1]

    def frames_to_heatmaps(self, frames: np.ndarray) -> np.ndarray:
        """BGR frames (B x h x w x 3) to heatmaps (B x 18 x H x W) in [0, 1]."""
        conf = self.cif_confidence(frames)
        h, w, top, left = letterbox_geometry(frames.shape[1], frames.shape[2], self.height, self.width)
        small = F.interpolate(conf, size=(h, w), mode="bilinear", align_corners=False).clamp_(0, 1)
        out = torch.zeros(len(frames), len(JOINTS), self.height, self.width, device=conf.device)
        order = [COCO17.index(name) for name in JOINTS[:-1]]
        out[:, : len(order), top:top + h, left:left + w] = small[:, order]
        # Neck: CIF has no neck field; the shoulders' mean marks the shoulder girdle it sits on.
        ls, rs = JOINTS.index("left_shoulder"), JOINTS.index("right_shoulder")
        out[:, JOINTS.index("neck")] = 0.5 * (out[:, ls] + out[:, rs])
        return out.cpu().numpy()
