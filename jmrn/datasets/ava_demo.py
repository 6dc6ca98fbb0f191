"""A small AVA-format dataset of marker figures, for tests and the AVA pipeline's demo.

Each video shows two or three of the demo's stick figures side by side, each doing one action
for the whole video; keyframes are whole seconds, boxes come from the markers at the keyframe.
Written in AVA's published layout (``jmrn.datasets.ava``): videos ``<id>.mkv``, train / val box
CSVs (with an action outside the evaluated list, as AVA's files have), the action list, an
excluded keyframe, and a proposal CSV for val with jittered, spurious and low-score boxes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from jmrn.datasets.demo import FPS, FRAME_HEIGHT, FRAME_WIDTH, make_subject, skeleton_3d, \
    write_marker_video
from jmrn.io import atomic_path

ACTIONS = {11: "wave", 12: "clap", 13: "squat", 14: "punch", 15: "kick"}
UNLISTED_ACTION = 80  # in the box files, not in the action list (AVA has 80, evaluates 60)
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def video_name(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(ID_ALPHABET), 11))


def place(joints: np.ndarray, centre_x: float, size: float, rng: np.random.Generator) -> np.ndarray:
    """Project a figure (front view, slight yaw) with its feet near the bottom, centred at x."""
    yaw = np.deg2rad(rng.uniform(-30, 30))
    x = joints[..., 0] * np.cos(yaw) + joints[..., 2] * np.sin(yaw)
    px, py = x * size, -joints[..., 1] * size
    px += centre_x - px.mean()
    py += FRAME_HEIGHT - 12 - py.max()
    return np.stack([px, py], -1)


def render(path: Path, figures: list[np.ndarray], rng: np.random.Generator) -> None:
    """Draw every figure's markers (each T x 18 x 2, all visible) into an MJPG .mkv, atomically."""
    n_frames, n_joints = figures[0].shape[:2]
    visible = np.ones((n_frames, n_joints), bool)
    order = np.broadcast_to(np.arange(n_joints), (n_frames, n_joints))
    write_marker_video(path, [(np.round(xy * 16).astype(np.int32), visible, order) for xy in figures],
                       3, rng)


def box_of(xy: np.ndarray) -> tuple[float, ...]:
    """Normalised box around one frame's markers (18 x 2), with a margin, clipped to the frame."""
    lo, hi = xy.min(axis=0) - 6, xy.max(axis=0) + 6
    return (max(0.0, lo[0] / FRAME_WIDTH), max(0.0, lo[1] / FRAME_HEIGHT),
            min(1.0, hi[0] / FRAME_WIDTH), min(1.0, hi[1] / FRAME_HEIGHT))


def jitter(box: tuple[float, ...], rng: np.random.Generator, amount: float) -> tuple[float, ...]:
    x1, y1, x2, y2 = np.asarray(box) + rng.uniform(-amount, amount, 4)
    x1, y1 = max(0.0, x1), max(0.0, y1)
    return (x1, y1, min(1.0, max(x2, x1 + 0.05)), min(1.0, max(y2, y1 + 0.05)))


def generate(root: str | os.PathLike, train_videos: int = 16, val_videos: int = 8,
             seconds: int = 7, keyframes: tuple[int, ...] = (2, 3, 4, 5), seed: int = 0,
             version: str = "2.1") -> dict[str, Path]:
    """Write the dataset under ``root`` (``videos/``, ``annotations/``); returns its paths."""
    root = Path(root)
    videos, ann = root / "videos", root / "annotations"
    videos.mkdir(parents=True, exist_ok=True)
    ann.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    action_ids = list(ACTIONS)
    boxes: dict[str, list] = {"train": [], "val": []}
    proposals = []
    detected = {"train": [], "val": []}  # (box, true action or None) an RGB detector scores
    for subset, count in (("train", train_videos), ("val", val_videos)):
        for v in range(count):
            name = video_name(rng)
            n_people = int(rng.integers(2, 4))
            figures, actions = [], []
            for p in range(n_people):
                action = action_ids[int(rng.integers(len(action_ids)))]
                subject = make_subject(rng)
                joints = skeleton_3d(ACTIONS[action], seconds * FPS, subject, rng)
                centre = FRAME_WIDTH * (p + 0.5) / n_people + rng.uniform(-8, 8)
                figures.append(place(joints, centre, rng.uniform(95, 115), rng))
                actions.append(action)
            render(videos / f"{name}.mkv", figures, rng)
            for ts in keyframes:
                for person, (xy, action) in enumerate(zip(figures, actions)):
                    box = box_of(xy[ts * FPS])
                    boxes[subset].append((name, ts, *box, action, person))
                    if subset == "train":
                        detected["train"].append(((name, ts, *box), action))
                    if person == 0:  # AVA boxes carry several actions, some not evaluated
                        boxes[subset].append((name, ts, *box, UNLISTED_ACTION, person))
                    if subset == "val":
                        proposals.append((name, ts, *jitter(box, rng, 0.015), 1, rng.uniform(0.85, 1.0)))
                        detected["val"].append(((name, ts, *proposals[-1][2:6]), action))
                        proposals.append((name, ts, *jitter(box, rng, 0.02), 1, rng.uniform(0.1, 0.5)))
                if subset == "val" and rng.random() < 0.3:  # a spurious detection
                    x = rng.uniform(0, 0.7)
                    proposals.append((name, ts, x, 0.1, x + 0.25, 0.6, 1, rng.uniform(0.8, 0.95)))
                    detected["val"].append(((name, ts, x, 0.1, x + 0.25, 0.6), None))
    paths = {"video_root": videos, "annotation_dir": ann, "proposals": ann / "ava_val_proposals.csv",
             "detections_train": root / "rgb_detections_train.csv",
             "detections_val": root / "rgb_detections_val.csv"}
    for subset, items in detected.items():
        _write_csv(pd.DataFrame(detector_rows(items, rng)), paths[f"detections_{subset}"])
    for subset, rows in boxes.items():
        _write_csv(pd.DataFrame(rows), ann / f"ava_{subset}_v{version}.csv")
    _write_csv(pd.DataFrame(proposals), paths["proposals"])
    excluded = pd.DataFrame([(boxes["val"][0][0], keyframes[-1])])
    _write_csv(excluded, ann / f"ava_val_excluded_timestamps_v{version}.csv")
    items = "".join(f'item {{\n  name: "{n}"\n  id: {i}\n}}\n' for i, n in ACTIONS.items())
    with atomic_path(ann / f"ava_action_list_v{version}_for_activitynet_2018.pbtxt") as tmp:
        tmp.write_text(items, encoding="utf-8")
    return paths


def detector_rows(items: list, rng: np.random.Generator) -> list[tuple]:
    """An informative, noisy RGB detector in AVA's result layout: one row per box and action
    (video, timestamp, x1..y2, action id, probability)."""
    rows = []
    for box, action in items:
        for action_id in ACTIONS:
            z = (2.5 if action_id == action else -1.5) + rng.normal(0, 1.5)
            rows.append((*box, action_id, 1 / (1 + np.exp(-z))))
    return rows


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """AVA's CSVs: no header, boxes with 3 decimals, timestamps as 4 digits."""
    frame = frame.copy()
    frame[1] = frame[1].map(lambda t: f"{int(t):04d}")
    for c in range(2, 6):
        if c in frame:
            frame[c] = frame[c].map(lambda x: f"{x:.3f}")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, header=False, index=False)
