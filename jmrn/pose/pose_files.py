"""Poses that others computed: OpenPose's per-frame JSON and heatmaps, AlphaPose's results file.

Keypoints become heatmaps the way the ``keypoints`` backend renders them (Gaussians of peak =
the keypoint's confidence, persons combined by maximum), after their joint layout is converted
to ours; OpenPose's own part heatmaps (the paper's input) are resampled into our frame. Each
video's files are found under the backend's ``root`` by the manifest's video id:

- ``openpose``: ``<root>/<video_id>/<anything>_<frame:012d>_keypoints.json`` (OpenPose's
  ``--write_json``), ``people[].pose_keypoints_2d`` = x, y, confidence triples, BODY_25 (25
  joints) or COCO-18 (18) — told apart by their length. One file per frame, so a frame without
  people is still a frame.
- ``openpose_heatmaps``: ``<root>/<video_id>/<anything>_<frame:012d>_pose_heatmaps.png`` or
  ``.float`` (``--write_heatmaps``, ``--write_heatmaps_format png|float``): the channels
  side by side in one image (PNG, 0..255; ``channels`` says how many) or a float32 file
  (number of dimensions, the dimensions C x H x W, then the values); body parts first (then
  background and PAFs, dropped). OpenPose resizes the frame into the network keeping its aspect
  ratio and pads bottom and right: that padding is cut off before the parts are resampled into
  our letterboxed frame.
- ``alphapose``: ``<root>/<video_id>/alphapose-results.json`` or ``<root>/<video_id>.json``:
  a list of detections ``{"image_id": "<frame>.jpg", "keypoints": [x, y, score, ...], ...}``,
  COCO-17 (17 joints) or Halpe-26 (26). Frames without a detection are absent from the file:
  the video's length comes from the manifest (its probed frame count).
"""
from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from jmrn.pose.base import PoseBackend, letterbox_geometry, to_uint8
from jmrn.pose.keypoints import OPENPOSE18, convert_layout, render_batches
from jmrn.pose.skeleton import COCO17, JOINTS

# OpenPose BODY_25: COCO-18's joints, the mid-hip and six foot points.
BODY25: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)
# AlphaPose Halpe-26: COCO-17, then head, neck, hip and six foot points.
HALPE26: tuple[str, ...] = COCO17 + (
    "head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
    "left_heel", "right_heel",
)
BY_LENGTH = {"openpose": {25: BODY25, 18: OPENPOSE18}, "alphapose": {17: COCO17, 26: HALPE26}}
FRAME_FILE = re.compile(r"_(\d{12})_keypoints\.json$")
HEATMAP_FILE = re.compile(r"_(\d{12})_pose_heatmaps\.(png|float)$")


def _layout(tool: str, n_joints: int, where: str) -> tuple[str, ...]:
    layouts = BY_LENGTH[tool]
    if n_joints not in layouts:
        raise ValueError(f"{where}: {n_joints} joints per person; {tool} layouts have "
                         f"{' or '.join(map(str, layouts))}")
    return layouts[n_joints]


def _stack(people: list[list[np.ndarray]], n_joints: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame a list of V x 3 arrays -> keypoints M x T x V x 2 and scores M x T x V."""
    m = max([len(p) for p in people] + [1])
    data = np.zeros((m, len(people), n_joints, 3), np.float32)
    for t, frame in enumerate(people):
        for i, person in enumerate(frame):
            data[i, t] = person
    return data[..., :2], data[..., 2]


def numbered_files(folder: Path, pattern: re.Pattern, what: str) -> list[Path]:
    """Files of one video whose names carry consecutive 12-digit frame numbers, in order."""
    if not folder.is_dir():
        raise ValueError(f"no OpenPose folder {folder}")
    files = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.search(p.name)))
    if not files:
        raise ValueError(f"{folder}: no {what} files")
    numbers = [n for n, _ in files]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        raise ValueError(f"{folder}: frame files are not consecutive (first gap after frame "
                         f"{next(a for a, b in zip(numbers, numbers[1:]) if b != a + 1)})")
    return [p for _, p in files]


def read_openpose_heatmaps(path: Path, channels: int | None) -> np.ndarray:
    """One frame's OpenPose heatmaps as C x H x W floats in 0..1 (PNG: ``channels`` side by
    side, 0..255; float: OpenPose's float32 file with its own shape)."""
    if path.suffix == ".float":
        raw = np.fromfile(path, dtype=np.float32)
        ndim = int(raw[0]) if raw.size else 0
        shape = tuple(int(v) for v in raw[1:1 + ndim])
        if ndim != 3 or raw.size != 1 + ndim + int(np.prod(shape)):
            raise ValueError(f"{path}: not an OpenPose float heatmap file (C x H x W)")
        return np.clip(raw[1 + ndim:].reshape(shape), 0, 1)
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: cannot be read as an image")
    if not channels or image.shape[1] % channels:
        raise ValueError(f"{path}: width {image.shape[1]} is not {channels} heatmaps side by side "
                         "(pose.options.openpose_heatmaps.channels)")
    h, w = image.shape[0], image.shape[1] // channels
    return image.reshape(h, channels, w).transpose(1, 0, 2).astype(np.float32) / 255


def read_openpose(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Keypoints (M x T x V x 2), confidences (M x T x V) and layout of a folder of OpenPose
    JSON files, frames in the order of their 12-digit frame number."""
    files = numbered_files(Path(folder), FRAME_FILE, "*_<frame:012d>_keypoints.json")
    people, layout = [], None
    for path in files:
        frame = []
        for person in json.loads(path.read_text(encoding="utf-8")).get("people", []):
            values = np.asarray(person.get("pose_keypoints_2d", []), np.float32)
            if values.size == 0:
                continue
            if values.size % 3:
                raise ValueError(f"{path}: pose_keypoints_2d has {values.size} values, not x, y, c triples")
            names = _layout("openpose", values.size // 3, str(path))
            if layout is not None and names != layout:
                raise ValueError(f"{path}: {len(names)} joints per person, earlier frames had {len(layout)}")
            layout = names
            frame.append(values.reshape(-1, 3))
        people.append(frame)
    layout = layout or BODY25
    kp, score = _stack(people, len(layout))
    return kp, score, layout


def read_alphapose(path: str | os.PathLike, n_frames: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Keypoints, scores and layout of an AlphaPose results file for a video of ``n_frames``
    frames (``image_id`` "<frame>.jpg", 0-based); detections past the end are an error."""
    path = Path(path)
    detections = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(detections, list):
        raise ValueError(f"{path}: expected a list of detections (AlphaPose's results format)")
    frames: dict[int, list[np.ndarray]] = defaultdict(list)
    layout = None
    for det in detections:
        stem = Path(str(det["image_id"])).stem
        if not stem.isdigit():
            raise ValueError(f"{path}: image_id {det['image_id']!r} is not '<frame number>.<ext>'")
        values = np.asarray(det["keypoints"], np.float32)
        names = _layout("alphapose", values.size // 3, str(path))
        if layout is not None and names != layout:
            raise ValueError(f"{path}: detections with {len(names)} and {len(layout)} joints")
        layout = names
        frames[int(stem)].append(values.reshape(-1, 3))
    if frames and max(frames) >= n_frames:
        raise ValueError(f"{path}: a detection in frame {max(frames)} of a {n_frames}-frame video")
    layout = layout or COCO17
    kp, score = _stack([frames.get(t, []) for t in range(n_frames)], len(layout))
    return kp, score, layout


class _PoseFilesBackend(PoseBackend):
    """Renders heatmaps from another tool's pose files, found under ``root`` by video id, in
    the layout the files turn out to have."""

    decodes_video = False

    def __init__(self, height: int, width: int, root: str, batch_size: int = 32,
                 sigma: float = 0.6) -> None:
        super().__init__(height, width, batch_size)
        self.root, self.sigma = Path(root), sigma

    def attrs(self) -> dict[str, Any]:
        return {**super().attrs(), "sigma": self.sigma, "root": str(self.root)}

    def read(self, video: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Keypoints (M x T x V x 2), confidences (M x T x V) and the files' joint layout."""
        raise NotImplementedError

    def heatmaps(self, video: Mapping[str, Any]) -> Iterator[np.ndarray]:
        kp, score, names = self.read(video)
        kp, score = convert_layout(kp, score, names)
        yield from render_batches(kp, score, (int(video["height"]), int(video["width"])),
                                  (self.height, self.width), self.sigma, self.batch_size)


class OpenPoseBackend(_PoseFilesBackend):
    name = "openpose"

    def read(self, video: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        return read_openpose(self.root / str(video["video_id"]))


class AlphaPoseBackend(_PoseFilesBackend):
    name = "alphapose"

    def read(self, video: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        vid = str(video["video_id"])
        candidates = [self.root / vid / "alphapose-results.json", self.root / f"{vid}.json"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise ValueError(f"no AlphaPose results for {vid}: looked for "
                             f"{' and '.join(str(p) for p in candidates)}")
        return read_alphapose(path, int(video["frames"]))



class OpenPoseHeatmapsBackend(PoseBackend):
    """OpenPose's own body-part heatmaps (``--write_heatmaps``), resampled into our frame."""

    name = "openpose_heatmaps"
    decodes_video = False

    def __init__(self, height: int, width: int, root: str, layout: str = "body25",
                 channels: int | None = None, batch_size: int = 16) -> None:
        super().__init__(height, width, batch_size)
        names = {"body25": BODY25, "coco18": OPENPOSE18}
        if layout not in names:
            raise ValueError(f"openpose_heatmaps layout must be one of {sorted(names)}, got {layout!r}")
        self.root, self.layout, self.channels = Path(root), layout, channels
        parts = names[layout]
        self.take = [(j, parts.index(name)) for j, name in enumerate(JOINTS) if name in parts]

    def attrs(self) -> dict[str, Any]:
        return {**super().attrs(), "root": str(self.root), "layout": self.layout,
                "channels": self.channels}

    def to_ours(self, parts: np.ndarray, src_hw: tuple[int, int]) -> np.ndarray:
        """C x h x w OpenPose maps of a src_hw frame -> 18 x H x W floats in our letterbox."""
        _, h, w = parts.shape
        scale = min(h / src_hw[0], w / src_hw[1])
        used_h, used_w = max(1, round(src_hw[0] * scale)), max(1, round(src_hw[1] * scale))
        out_h, out_w, top, left = letterbox_geometry(src_hw[0], src_hw[1], self.height, self.width)
        maps = np.zeros((len(JOINTS), self.height, self.width), np.float32)
        for j, c in self.take:
            maps[j, top:top + out_h, left:left + out_w] = cv2.resize(
                parts[c, :used_h, :used_w], (out_w, out_h), interpolation=cv2.INTER_AREA)
        return np.clip(maps, 0, 1)

    def heatmaps(self, video: Mapping[str, Any]) -> Iterator[np.ndarray]:
        files = numbered_files(self.root / str(video["video_id"]), HEATMAP_FILE,
                               "*_<frame:012d>_pose_heatmaps.png|.float")
        src_hw = (int(video["height"]), int(video["width"]))
        for start in range(0, len(files), self.batch_size):
            batch = [self.to_ours(read_openpose_heatmaps(p, self.channels), src_hw)
                     for p in files[start:start + self.batch_size]]
            yield to_uint8(np.stack(batch))
