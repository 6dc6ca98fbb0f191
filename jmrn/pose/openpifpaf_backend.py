"""``openpifpaf`` backend: CIF keypoint-confidence fields of openpifpaf's network as heatmaps.

Only the network runs (batched frames, ``inference_mode``, fp16 on GPU); no pose decoding.
The CIF confidence channel of each of the 17 COCO joints is already a heatmap in which several
persons add up; it is cropped to the frame, resized into the H x W output (aspect kept) and
the neck is derived from the shoulders.

Checkpoints: ``checkpoint`` is a local file path, or an openpifpaf name or URL whose release
file is already in torch's hub cache (nothing is downloaded: openpifpaf's loader would unpickle
what it fetched). A local file that holds a state dict (tensors
only) is loaded with ``torch.load(weights_only=True)`` into the network openpifpaf's factory
builds for ``base_net``: nothing in the file can run. openpifpaf's own release files are whole
pickled models, and unpickling one runs whatever code it names, so such a file is loaded (by
openpifpaf's loader) only when ``checkpoint_sha256`` equals its SHA-256; otherwise the job stops
with one line naming the file. ``python -m jmrn openpifpaf-state-dict`` turns a trusted one into
a state dict once. ``checkpoint: null`` builds ``base_net`` with random weights (tests, timing).
"""
from __future__ import annotations

import contextlib
import math
import os
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jmrn.datasets.report import DatasetError
from jmrn.device import resolve_device
from jmrn.io import sha256_file
from jmrn.pose.base import PoseBackend, letterbox_geometry, wanted_frames
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


def _random_network(base_net: str) -> torch.nn.Module:
    import openpifpaf

    head_metas = openpifpaf.datasets.factory("cocokp").head_metas
    net, _ = openpifpaf.network.Factory(base_name=base_net).factory(head_metas=head_metas)
    return net


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """The tensors of a state-dict checkpoint (also nested under ``state_dict`` or ``model``),
    read with ``weights_only=True``; None when the file is a pickled model instead."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DatasetError(f"{path}: not a state dict of tensors (config pose.options.openpifpaf.checkpoint)")
    return obj


def _downloaded_release_file(name: str) -> str:
    """The file openpifpaf keeps in torch's hub cache for a checkpoint name or URL, loaded under
    the same rules as a local file; never a download (openpifpaf's loader would unpickle it)."""
    from openpifpaf.network.factory import CHECKPOINT_URLS

    url = CHECKPOINT_URLS.get(name, name)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url)) \
        if isinstance(url, str) and url.startswith(("http://", "https://")) else None
    if cached is None or not os.path.isfile(cached):
        raise DatasetError(
            f"pose.options.openpifpaf.checkpoint {name!r} is not a local file: openpifpaf would "
            "download and unpickle it, which runs the code it names; download it yourself and "
            "give its path (docs/pose-backends.md#openpifpaf-checkpoint)")
    return cached


def build_network(checkpoint: str | None, base_net: str = "shufflenetv2k16",
                  checkpoint_sha256: str | None = None) -> torch.nn.Module:
    """openpifpaf's network: from a checkpoint name or local file (see the module docstring
    for what is unpickled when), or ``base_net`` with random weights."""
    import openpifpaf

    if not checkpoint:
        return _random_network(base_net)
    if not os.path.isfile(checkpoint):
        checkpoint = _downloaded_release_file(checkpoint)
    state = read_state_dict(checkpoint)
    if state is not None:
        net = _random_network(base_net)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise DatasetError(f"{checkpoint}: its tensors do not fit openpifpaf's {base_net} "
                               f"(config pose.options.openpifpaf.base_net): {str(exc).splitlines()[0]}") from exc
        return net
    if checkpoint_sha256 is None or sha256_file(checkpoint).lower() != checkpoint_sha256.lower():
        raise DatasetError(
            f"refusing to unpickle {checkpoint}: it is a pickled model, and loading one runs the code "
            "it names; if you trust the file, set pose.options.openpifpaf.checkpoint_sha256 to its SHA-256 "
            "(sha256sum), or convert it once with `python -m jmrn openpifpaf-state-dict`")
    with _full_unpickling():
        net, _ = openpifpaf.network.Factory(checkpoint=checkpoint).factory()
    return net


def save_state_dict(checkpoint: str, sha256: str, out: str) -> None:
    """Convert a trusted whole-model openpifpaf checkpoint (its SHA-256 given) to a state dict.
    A missing file, or one whose SHA-256 is not the one given, is refused before anything is
    unpickled, with what to check."""
    from jmrn.io import save_torch

    if not os.path.isfile(checkpoint):
        raise DatasetError(f"{checkpoint}: no such file; download openpifpaf's checkpoint first "
                           "(docs/pose-backends.md#openpifpaf-checkpoint)")
    actual = sha256_file(checkpoint)
    if actual.lower() != sha256.strip().lower():
        raise DatasetError(f"{checkpoint}: its SHA-256 is {actual}, not the {sha256} given: a "
                           "truncated or different download? (openpifpaf's shufflenetv2k16 file's "
                           "SHA-256 starts with 7189450a)")
    net = build_network(checkpoint, checkpoint_sha256=sha256)
    save_torch({k: v.cpu() for k, v in net.state_dict().items()}, out)


def quantize(maps: torch.Tensor) -> torch.Tensor:
    """``jmrn.pose.base.to_uint8`` on the tensor's own device (the same bytes for float32)."""
    return (maps * 255.0).round().clamp(0, 255).to(torch.uint8)


class OpenPifPafBackend(PoseBackend):
    name = "openpifpaf"

    def __init__(self, height: int, width: int, batch_size: int = 8,
                 checkpoint: str | None = "shufflenetv2k16", base_net: str = "shufflenetv2k16",
                 device: str = "auto", fp16: bool = True, long_edge: int | None = None,
                 checkpoint_sha256: str | None = None) -> None:
        super().__init__(height, width, batch_size)
        self.checkpoint, self.base_net, self.long_edge = checkpoint, base_net, long_edge
        self.device = resolve_device(device)
        self.dtype = torch.float16 if fp16 and self.device.type == "cuda" else torch.float32
        self.net = build_network(checkpoint, base_net, checkpoint_sha256).eval().to(self.device,
                                                                                   self.dtype)
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
        """uint8 heatmaps batch by batch. Frames are decoded in a reader thread; on a GPU one
        batch is in flight: the next one is computed while the previous one is copied back
        (pinned buffer, non-blocking copy) and written by the caller."""
        in_flight = None
        for frames in iter_frame_batches(video["path"], self.batch_size,
                                         frames=wanted_frames(video)):
            launched = self._launch(frames)
            if in_flight is not None:
                yield self._collect(in_flight)
            in_flight = launched
        if in_flight is not None:
            yield self._collect(in_flight)

    def _launch(self, frames: np.ndarray) -> tuple[torch.Tensor, Any]:
        """Start one batch: its uint8 heatmaps on the host, and the event that says they are there
        (None on the CPU, where they are there at once)."""
        maps = quantize(self.heatmap_tensor(frames))
        if self.device.type != "cuda":
            return maps, None
        host = torch.empty(maps.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(maps, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    @staticmethod
    def _collect(launched: tuple[torch.Tensor, Any]) -> np.ndarray:
        host, done = launched
        if done is not None:
            done.synchronize()
        return host.numpy()

    def _prepare(self, frames: np.ndarray) -> tuple[torch.Tensor, int, int]:
        """BGR uint8 batch -> normalised RGB tensor padded to stride*k + 1; valid (h, w)."""
        x = torch.from_numpy(frames)
        if self.device.type == "cuda":  # page-locked, so the copy runs beside the GPU's work
            x = x.pin_memory().to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).flip(1)  # B x RGB x h x w
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
        return self.heatmap_tensor(frames).cpu().numpy()

    def heatmap_tensor(self, frames: np.ndarray) -> torch.Tensor:
        """``frames_to_heatmaps`` on the backend's device (B x 18 x H x W float32)."""
        conf = self.cif_confidence(frames)
        h, w, top, left = letterbox_geometry(frames.shape[1], frames.shape[2], self.height, self.width)
        small = F.interpolate(conf, size=(h, w), mode="bilinear", align_corners=False).clamp_(0, 1)
        out = torch.zeros(len(frames), len(JOINTS), self.height, self.width, device=conf.device)
        order = [COCO17.index(name) for name in JOINTS[:-1]]
        out[:, : len(order), top:top + h, left:left + w] = small[:, order]
        # Neck: CIF has no neck field; the shoulders' mean marks the shoulder girdle it sits on.
        ls, rs = JOINTS.index("left_shoulder"), JOINTS.index("right_shoulder")
        out[:, JOINTS.index("neck")] = 0.5 * (out[:, ls] + out[:, rs])
        return out
