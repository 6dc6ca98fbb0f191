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

Everything read is checked: a file that is not what its tool writes (not JSON, a person that is
not an object, a value that is not a number, a float file whose header is not finite whole
numbers, too few channels), a video id that leads outside ``root``, or a folder without files
fails that video with a one-line ``UserError`` (the pose stage records it and goes on). A joint
with a non-finite coordinate or confidence is dropped (confidence 0) and a frame with more than
``max_people`` people keeps the most confident; both are noted in ``notes`` (recorded as a
warning). Storage errors stay ``OSError``s naming the file.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from jmrn.errors import UserError
from jmrn.pose.base import PoseBackend, letterbox_geometry, to_uint8
from jmrn.pose.keypoints import OPENPOSE18, TRUNCATE, convert_layout, render_batches
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
FRAME_FILE = re.compile(r"_([0-9]{12})_keypoints\.json$")
HEATMAP_FILE = re.compile(r"_([0-9]{12})_pose_heatmaps\.(png|float)$")
# People kept per frame (the most confident; pose.options.<openpose|alphapose>.max_people).
MAX_PEOPLE = 64
# Largest PNG heatmap image accepted, in pixels (checked before it is decoded, so that a small
# file cannot claim gigabytes; a float file's values are bounded by its own size).
MAX_HEATMAP_VALUES = 2**27
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def inside(root: Path, name: str, what: str = "video id") -> Path:
    """``root / name``, refused unless it names an entry strictly inside ``root`` (no ``..``
    out of it, no absolute name); checked on the names, so links placed in ``root`` work."""
    base = os.path.abspath(root)
    if "\0" in name or os.path.commonpath([base, os.path.abspath(os.path.join(base, name))]) != base \
            or os.path.normpath(os.path.join(base, name)) == base:
        raise UserError(f"{what} {name!r} does not stay inside {root}")
    return root / name


def read_json(path: Path) -> Any:
    """A JSON file's content; a file that is not JSON is a UserError, a storage error an OSError."""
    data = path.read_bytes()
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{path}: not JSON ({exc})") from None


def _layout(tool: str, n_joints: int, where: str) -> tuple[str, ...]:
    layouts = BY_LENGTH[tool]
    if n_joints not in layouts:
        raise UserError(f"{where}: {n_joints} joints per person; {tool} layouts have "
                        f"{' or '.join(map(str, layouts))}")
    return layouts[n_joints]


def triples(values: Any, where: str) -> tuple[np.ndarray, int]:
    """x, y, confidence triples as V x 3 float32 with non-finite joints zeroed, and their count."""
    if not isinstance(values, list) or not all(type(v) in (int, float) for v in values):
        raise UserError(f"{where}: keypoints are not a list of numbers")
    if len(values) % 3:
        raise UserError(f"{where}: {len(values)} keypoint values, not x, y, confidence triples")
    try:
        wide = np.array(values, np.float64)
    except OverflowError:
        raise UserError(f"{where}: keypoints are not a list of numbers (one is too large)") from None
    with np.errstate(over="ignore"):
        data = wide.astype(np.float32).reshape(-1, 3)
    bad = ~np.isfinite(data).all(axis=1)
    data[bad] = 0
    return data, int(bad.sum())


class _Reader:
    """Collects one video's people frame by frame: one layout, at most ``max_people`` per frame,
    and what was dropped (``notes``)."""

    def __init__(self, tool: str, max_people: int) -> None:
        self.tool, self.max_people = tool, max_people
        self.layout: tuple[str, ...] | None = None
        self.dropped_joints = self.capped_frames = 0

    def person(self, values: Any, where: str) -> np.ndarray:
        data, bad = triples(values, where)
        names = _layout(self.tool, len(data), where)
        if self.layout is not None and names != self.layout:
            raise UserError(f"{where}: {len(names)} joints per person, others have {len(self.layout)}")
        self.layout, self.dropped_joints = names, self.dropped_joints + bad
        return data

    def cap(self, people: list[np.ndarray]) -> list[np.ndarray]:
        """The ``max_people`` most confident people (by summed confidence), in file order."""
        if len(people) <= self.max_people:
            return people
        self.capped_frames += 1
        conf = np.array([p[:, 2].sum() for p in people])
        return [people[i] for i in np.sort(np.argsort(-conf, kind="stable")[:self.max_people])]

    def finish(self, frames: list[list[np.ndarray]], default: tuple[str, ...],
               notes: list[str] | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Keypoints M x T x V x 2, confidences M x T x V and the layout; notes appended."""
        layout = self.layout or default
        m = max([len(p) for p in frames] + [1])
        data = np.zeros((m, len(frames), len(layout), 3), np.float32)
        for t, people in enumerate(frames):
            if people:
                data[:len(people), t] = np.stack(people)
        if notes is not None and self.dropped_joints:
            notes.append(f"{self.dropped_joints} joints with non-finite values dropped")
        if notes is not None and self.capped_frames:
            notes.append(f"more than {self.max_people} people in {self.capped_frames} "
                         f"frame{'s' * (self.capped_frames > 1)}: the {self.max_people} most confident kept")
        return data[..., :2], data[..., 2], layout


def numbered_files(folder: Path, pattern: re.Pattern, what: str) -> list[Path]:
    """Files of one video whose names carry consecutive 12-digit frame numbers, in order."""
    if not folder.is_dir():
        raise UserError(f"no OpenPose folder {folder}")
    files = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.search(p.name)))
    if not files:
        raise UserError(f"{folder}: no {what} files")
    numbers = [n for n, _ in files]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        raise UserError(f"{folder}: frame files are not consecutive (first gap after frame "
                        f"{next(a for a, b in zip(numbers, numbers[1:]) if b != a + 1)})")
    return [p for _, p in files]


def png_size(data: bytes, path: Path) -> tuple[int, int]:
    """Width and height of a PNG whose chunks all lie inside the file (checked before decoding,
    so that a damaged length or size cannot make the decoder allocate gigabytes)."""
    at = 8
    while data[:8] == PNG_SIGNATURE and at + 12 <= len(data):
        at += 12 + struct.unpack(">I", data[at:at + 4])[0]
    if data[:8] != PNG_SIGNATURE or at != len(data) or data[12:16] != b"IHDR":
        raise UserError(f"{path}: not a PNG image (or a truncated one)")
    return struct.unpack(">II", data[16:24])


def read_openpose_heatmaps(path: Path, channels: int | None) -> np.ndarray:
    """One frame's OpenPose heatmaps as C x H x W floats as stored (PNG: ``channels`` side by
    side, 0..255 scaled to 0..1; float: OpenPose's float32 file with its own shape)."""
    data = path.read_bytes()
    if path.suffix == ".float":
        raw = np.frombuffer(data[:len(data) // 4 * 4], np.float32)
        head = raw[:4]
        if len(data) % 4 or len(head) < 4 or not np.isfinite(head).all() or head[0] != 3 \
                or (head[1:] < 1).any() or (head[1:] != np.round(head[1:])).any() \
                or raw.size != 4 + math.prod(int(v) for v in head[1:]):
            raise UserError(f"{path}: not an OpenPose float heatmap file (3, C, H, W, then "
                            "C x H x W float32 values)")
        maps = raw[4:].reshape(tuple(int(v) for v in head[1:]))
        if not np.isfinite(maps).all():
            raise UserError(f"{path}: non-finite heatmap values")
        return maps
    width, height = png_size(data, path)
    if width * height > MAX_HEATMAP_VALUES:
        raise UserError(f"{path}: {width} x {height} pixels, more than {MAX_HEATMAP_VALUES} "
                        "(not OpenPose heatmaps)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None or image.ndim != 2 or image.dtype != np.uint8:
        raise UserError(f"{path}: not an 8-bit grayscale PNG image (OpenPose's heatmaps)")
    if not channels or image.shape[1] % channels:
        raise UserError(f"{path}: width {image.shape[1]} is not {channels} heatmaps side by side "
                        "(pose.options.openpose_heatmaps.channels)")
    h, w = image.shape[0], image.shape[1] // channels
    return image.reshape(h, channels, w).transpose(1, 0, 2).astype(np.float32) / 255


def read_openpose(folder: str | os.PathLike, max_people: int = MAX_PEOPLE, notes: list[str] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Keypoints (M x T x V x 2), confidences (M x T x V) and layout of a folder of OpenPose
    JSON files, frames in the order of their 12-digit frame number."""
    files = numbered_files(Path(folder), FRAME_FILE, "*_<frame:012d>_keypoints.json")
    reader, frames = _Reader("openpose", max_people), []
    for path in files:
        doc = read_json(path)
        people = doc.get("people") if isinstance(doc, dict) else None
        if not isinstance(people, list):
            raise UserError(f"{path}: not an OpenPose keypoints file (no 'people' list)")
        frame = []
        for i, person in enumerate(people):
            if not isinstance(person, dict):
                raise UserError(f"{path}: person {i} is not an object")
            values = person.get("pose_keypoints_2d", [])
            if values != []:  # people without body keypoints (face or hands only) are skipped
                frame.append(reader.person(values, f"{path}: person {i}"))
        frames.append(reader.cap(frame))
    return reader.finish(frames, BODY25, notes)


def read_alphapose(path: str | os.PathLike, n_frames: int, max_people: int = MAX_PEOPLE,
                   notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Keypoints, scores and layout of an AlphaPose results file for a video of ``n_frames``
    frames (``image_id`` "<frame>.jpg", 0-based); detections past the end are an error."""
    path = Path(path)
    detections = read_json(path)
    if not isinstance(detections, list):
        raise UserError(f"{path}: expected a list of detections (AlphaPose's results format)")
    reader, frames = _Reader("alphapose", max_people), defaultdict(list)
    for i, det in enumerate(detections):
        where = f"{path}: detection {i}"
        if not isinstance(det, dict):
            raise UserError(f"{where} is not an object")
        for key in ("image_id", "keypoints"):
            if key not in det:
                raise UserError(f"{where} has no {key}")
        image_id = det["image_id"]
        if not isinstance(image_id, str) or not re.fullmatch("[0-9]{1,12}", Path(image_id).stem):
            raise UserError(f"{where}: image_id {image_id!r} is not '<frame number>.<ext>'")
        frames[int(Path(image_id).stem)].append(reader.person(det["keypoints"], where))
    if frames and max(frames) >= n_frames:
        raise UserError(f"{path}: a detection in frame {max(frames)} of a {n_frames}-frame video")
    return reader.finish([reader.cap(frames.get(t, [])) for t in range(n_frames)], COCO17, notes)


class _PoseFilesBackend(PoseBackend):
    """Renders heatmaps from another tool's pose files, found under ``root`` by video id, in
    the layout the files turn out to have."""

    short_reason = None
    reads_pixels = False

    def __init__(self, height: int, width: int, root: str, batch_size: int = 32,
                 sigma: float = 0.6, max_people: int = MAX_PEOPLE,
                 truncate: float = TRUNCATE) -> None:
        super().__init__(height, width, batch_size)
        if not isinstance(max_people, int) or max_people < 1:
            raise ValueError(f"pose.options.{self.name}.max_people must be a positive integer, "
                             f"got {max_people!r}")
        self.root, self.sigma, self.max_people = Path(root), sigma, max_people
        self.truncate = truncate

    def attrs(self) -> dict[str, Any]:
        return {**super().attrs(), "sigma": self.sigma, "truncate": self.truncate, "root": str(self.root),
                "max_people": self.max_people}

    def read(self, video: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Keypoints (M x T x V x 2), confidences (M x T x V) and the files' joint layout."""
        raise NotImplementedError

    def heatmaps(self, video: Mapping[str, Any]) -> Iterator[np.ndarray]:
        self.notes = []
        kp, score, names = self.read(video)
        kp, score = convert_layout(kp, score, names)
        yield from render_batches(kp, score, (int(video["height"]), int(video["width"])),
                                  (self.height, self.width), self.sigma, self.batch_size, self.truncate)


class OpenPoseBackend(_PoseFilesBackend):
    name = "openpose"
    short_reason = "{decoded} of {announced} frames have OpenPose files"

    def read(self, video: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        return read_openpose(inside(self.root, str(video["video_id"])), self.max_people, self.notes)


class AlphaPoseBackend(_PoseFilesBackend):
    name = "alphapose"

    def read(self, video: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        vid = str(video["video_id"])
        folder = inside(self.root, vid)
        candidates = [folder / "alphapose-results.json", self.root / f"{vid}.json"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise UserError(f"no AlphaPose results for {vid}: looked for "
                            f"{' and '.join(str(p) for p in candidates)}")
        return read_alphapose(path, int(video["frames"]), self.max_people, self.notes)


class OpenPoseHeatmapsBackend(PoseBackend):
    """OpenPose's own body-part heatmaps (``--write_heatmaps``), resampled into our frame."""

    name = "openpose_heatmaps"
    reads_pixels = False
    short_reason = "{decoded} of {announced} frames have OpenPose heatmap files"

    def __init__(self, height: int, width: int, root: str, layout: str = "body25",
                 channels: int | None = None, batch_size: int = 16) -> None:
        super().__init__(height, width, batch_size)
        names = {"body25": BODY25, "coco18": OPENPOSE18}
        if layout not in names:
            raise ValueError(f"openpose_heatmaps layout must be one of {sorted(names)}, got {layout!r}")
        self.root, self.layout, self.channels = Path(root), layout, channels
        self.parts = names[layout]
        self.take = [(j, self.parts.index(name)) for j, name in enumerate(JOINTS) if name in self.parts]

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
                np.clip(parts[c, :used_h, :used_w], 0, 1), (out_w, out_h), interpolation=cv2.INTER_AREA)
        return maps

    def frame(self, path: Path, src_hw: tuple[int, int]) -> np.ndarray:
        """One heatmap file in our frame; fewer channels than the layout's body parts fail."""
        parts = read_openpose_heatmaps(path, self.channels)
        if len(parts) < len(self.parts):
            raise UserError(f"{path}: {len(parts)} channels; OpenPose's {self.layout} heatmaps "
                            f"start with {len(self.parts)} body parts")
        return self.to_ours(parts, src_hw)

    def heatmaps(self, video: Mapping[str, Any]) -> Iterator[np.ndarray]:
        files = numbered_files(inside(self.root, str(video["video_id"])), HEATMAP_FILE,
                               "*_<frame:012d>_pose_heatmaps.png|.float")
        src_hw = (int(video["height"]), int(video["width"]))
        for start in range(0, len(files), self.batch_size):
            yield to_uint8(np.stack([self.frame(p, src_hw) for p in files[start:start + self.batch_size]]))
