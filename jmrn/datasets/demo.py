"""Embedded demo dataset: procedurally animated skeletons rendered as coloured-marker videos.

A small 3D stick figure is driven by per-action joint-angle programs, rotated to a random
facing direction, projected orthographically and drawn at 320x240 with one colour per joint
(a "moving light display"). Subjects differ in proportions and style; videos differ in size,
position, speed, phase, duration, marker noise and dropped markers. The output mirrors
HMDB51's published layout (class folders + ``<class>_test_split<k>.txt``) so the demo runs
through the same adapter as HMDB51.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from jmrn.io import atomic_path
from jmrn.pose.skeleton import JOINTS, NUM_JOINTS

log = logging.getLogger(__name__)

ACTIONS: tuple[str, ...] = (
    "walk", "run", "jump", "wave", "clap", "squat", "punch", "kick", "sit_down", "stand_up",
)
FPS = 25
FRAME_WIDTH, FRAME_HEIGHT = 320, 240
# Subject names double as file-name quirks found in real HMDB51 names.
SUBJECTS: tuple[str, ...] = (
    "Ann", "Bob's home video", "Clip (take #2)", "Mimi & Co", "Zoë", "Lee", "O'Neil",
    "Raj", "Sam [HD]", "Tom",
)


def marker_palette() -> np.ndarray:
    """BGR colour per joint: hues evenly spaced around the OpenCV hue circle (0..179)."""
    hsv = np.zeros((1, NUM_JOINTS, 3), np.uint8)
    hsv[0, :, 0] = marker_hues()
    hsv[0, :, 1:] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]


def marker_hues() -> np.ndarray:
    """OpenCV hue (0..179) of each joint's marker."""
    return (np.arange(NUM_JOINTS) * (180 // NUM_JOINTS)).astype(np.uint8)


@dataclass(frozen=True)
class Subject:
    """Per-actor body proportions and movement style."""

    limb_scale: np.ndarray  # (5,) torso, upper arm, forearm, thigh, shank multipliers
    style: np.ndarray  # (8,) degree offsets added to the segment angle programs
    amplitude: float


def make_subject(rng: np.random.Generator) -> Subject:
    return Subject(
        limb_scale=rng.uniform(0.88, 1.12, 5),
        style=rng.normal(0.0, 6.0, 8),
        amplitude=float(rng.uniform(0.8, 1.2)),
    )


def _segment_direction(flex: np.ndarray, abd: np.ndarray, side: float) -> np.ndarray:
    """Unit vectors (T,3) of a limb hanging down, flexed forward by ``flex`` and abducted by
    ``abd`` (degrees). Body frame: x = the person's left, y = up, z = forward."""
    f, a = np.deg2rad(flex), np.deg2rad(abd)
    return np.stack([side * np.sin(a), -np.cos(a) * np.cos(f), np.cos(a) * np.sin(f)], axis=-1)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def angle_program(action: str, t: np.ndarray, rng: np.random.Generator, amp: float) -> dict:
    """Segment angles (degrees, arrays of len T) plus forward speed and airborne height."""
    T = len(t)
    zeros = np.zeros(T)
    a = {k: zeros.copy() for k in (
        "lean", "l_up_f", "l_up_a", "l_fo_f", "l_fo_a", "r_up_f", "r_up_a", "r_fo_f", "r_fo_a",
        "l_th_f", "l_sh_f", "r_th_f", "r_sh_f", "air")}
    a["l_up_a"] += 6
    a["r_up_a"] += 6
    a["l_fo_a"] += 6
    a["r_fo_a"] += 6
    speed = float(rng.uniform(0.75, 1.35))
    p = 2 * np.pi * speed * t + rng.uniform(0, 2 * np.pi)
    side = rng.choice(["l", "r"])
    other = "r" if side == "l" else "l"
    velocity = 0.0
    if action in ("walk", "run"):
        run = action == "run"
        freq_p = p * (1.5 if run else 0.9)
        hip, knee, arm = (40, 70, 35) if run else (22, 30, 18)
        s = np.sin(freq_p)
        a["l_th_f"], a["r_th_f"] = hip * amp * s, -hip * amp * s
        a["l_sh_f"] = a["l_th_f"] - knee * np.maximum(0, -np.cos(freq_p))
        a["r_sh_f"] = a["r_th_f"] - knee * np.maximum(0, np.cos(freq_p))
        a["l_up_f"], a["r_up_f"] = -arm * amp * s, arm * amp * s
        elbow = 90 if run else 15
        a["l_fo_f"], a["r_fo_f"] = a["l_up_f"] + elbow, a["r_up_f"] + elbow
        a["lean"] += 10 if run else 3
        a["air"] = 0.05 * np.abs(np.sin(freq_p)) if run else zeros
        velocity = (1.6 if run else 0.6) * speed
    elif action == "jump":
        c = np.sin(p * 0.8)
        crouch, up = np.maximum(0, -c), np.maximum(0, c)
        for s_ in "lr":
            a[f"{s_}_th_f"] = 55 * amp * crouch
            a[f"{s_}_sh_f"] = a[f"{s_}_th_f"] - 90 * amp * crouch
            a[f"{s_}_up_f"] = 160 * amp * up - 35 * crouch
            a[f"{s_}_fo_f"] = a[f"{s_}_up_f"] + 10
        a["lean"] = 25 * crouch
        a["air"] = 0.3 * amp * up
    elif action == "wave":
        a[f"{side}_up_a"] = 140 + 10 * np.sin(0.5 * p)
        a[f"{side}_fo_a"] = 165 + 28 * amp * np.sin(1.6 * p)
    elif action == "clap":
        opening = 0.5 + 0.5 * np.sin(1.8 * p)
        for s_ in "lr":
            a[f"{s_}_up_f"] = 75 + zeros
            a[f"{s_}_up_a"] = 8 + 35 * amp * opening
            a[f"{s_}_fo_f"] = 90 + zeros
            a[f"{s_}_fo_a"] = -5 + 20 * amp * opening
    elif action == "squat":
        d = 0.5 - 0.5 * np.cos(0.6 * p)
        for s_ in "lr":
            a[f"{s_}_th_f"] = 100 * amp * d
            a[f"{s_}_sh_f"] = a[f"{s_}_th_f"] - 120 * amp * d
            a[f"{s_}_up_f"] = 90 * d
            a[f"{s_}_fo_f"] = 90 * d + 5
        a["lean"] = 30 * d
    elif action == "punch":
        for s_, shift in ((side, 0.0), (other, np.pi)):
            e = np.maximum(0, np.sin(1.2 * p + shift)) ** 2
            a[f"{s_}_up_f"] = 40 + 50 * amp * e
            a[f"{s_}_fo_f"] = a[f"{s_}_up_f"] + 110 * (1 - e)
        for s_ in "lr":
            a[f"{s_}_th_f"] = 15 + zeros
            a[f"{s_}_sh_f"] = zeros - 5
        a["lean"] += 5
    elif action == "kick":
        e = np.maximum(0, np.sin(0.8 * p)) ** 2
        a[f"{side}_th_f"] = 85 * amp * e
        a[f"{side}_sh_f"] = a[f"{side}_th_f"] - 200 * e * (1 - e)
        for s_ in "lr":
            a[f"{s_}_up_f"] = 30 + zeros
            a[f"{s_}_fo_f"] = 140 + zeros
        a["lean"] = -10 * e
    elif action in ("sit_down", "stand_up"):
        t0, t1 = rng.uniform(0.05, 0.3), rng.uniform(0.6, 0.95)
        s = _smoothstep((t / t[-1] - t0) / (t1 - t0)) if T > 1 else zeros
        if action == "stand_up":
            s = 1 - s
        bump = np.sin(np.pi * np.clip((t / max(t[-1], 1e-9) - t0) / (t1 - t0), 0, 1))
        for s_ in "lr":
            a[f"{s_}_th_f"] = 90 * s
            a[f"{s_}_sh_f"] = a[f"{s_}_th_f"] - 90 * s
            a[f"{s_}_up_f"] = 45 * amp * bump
            a[f"{s_}_fo_f"] = a[f"{s_}_up_f"] + 20
        a["lean"] = 5 + 35 * bump
    else:
        raise ValueError(f"unknown demo action {action!r}; known: {', '.join(ACTIONS)}")
    a["velocity"] = velocity
    return a


def skeleton_3d(action: str, n_frames: int, subject: Subject, rng: np.random.Generator) -> np.ndarray:
    """Joint positions (T, 18, 3) in body-height units, feet on the ground (y = 0)."""
    t = np.arange(n_frames) / FPS
    a = angle_program(action, t, rng, subject.amplitude)
    st = subject.style
    torso, upper, fore, thigh, shank = np.array([0.30, 0.17, 0.16, 0.25, 0.25]) * subject.limb_scale
    lean = np.deg2rad(a["lean"] + st[0])
    up = np.stack([np.zeros_like(lean), np.cos(lean), np.sin(lean)], -1)
    root = np.zeros((n_frames, 3))
    neck = root + torso * up
    head = neck + 0.10 * up
    joints = np.zeros((n_frames, NUM_JOINTS, 3))
    idx = {n: i for i, n in enumerate(JOINTS)}
    joints[:, idx["neck"]] = neck
    joints[:, idx["nose"]] = head + [0.0, -0.01, 0.06]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        s = side[0]
        joints[:, idx[f"{side}_eye"]] = head + [0.03 * sign, 0.02, 0.05]
        joints[:, idx[f"{side}_ear"]] = head + [0.065 * sign, 0.0, 0.0]
        shoulder = neck + [0.11 * sign, -0.03, 0.0]
        k = 0 if s == "l" else 1
        d_up = _segment_direction(a[f"{s}_up_f"] + st[1 + k], a[f"{s}_up_a"], sign)
        d_fo = _segment_direction(a[f"{s}_fo_f"] + st[3 + k], a[f"{s}_fo_a"], sign)
        elbow = shoulder + upper * d_up
        hip = root + [0.08 * sign, 0.0, 0.0]
        d_th = _segment_direction(a[f"{s}_th_f"] + st[5 + k], np.full(n_frames, 4.0), sign)
        d_sh = _segment_direction(a[f"{s}_sh_f"] + st[7 - k] * 0.5, np.full(n_frames, 2.0), sign)
        knee = hip + thigh * d_th
        joints[:, idx[f"{side}_shoulder"]] = shoulder
        joints[:, idx[f"{side}_elbow"]] = elbow
        joints[:, idx[f"{side}_wrist"]] = elbow + fore * d_fo
        joints[:, idx[f"{side}_hip"]] = hip
        joints[:, idx[f"{side}_knee"]] = knee
        joints[:, idx[f"{side}_ankle"]] = knee + shank * d_sh
    ankles = joints[:, [idx["left_ankle"], idx["right_ankle"]], 1]
    joints[:, :, 1] += (a["air"] - ankles.min(axis=1))[:, None]
    joints[:, :, 2] += (a["velocity"] * t)[:, None]
    return joints


def project(joints: np.ndarray, rng: np.random.Generator, max_yaw: float = 70.0,
            back_view: float = 0.15) -> tuple[np.ndarray, np.ndarray, float]:
    """Rotate to a random facing direction and project to pixels: (T,18,2) xy, (T,18) depth, size.

    Yaw is within +-max_yaw degrees of facing the camera; a ``back_view`` fraction of videos
    shows the person from behind (left and right swap sides in the image)."""
    yaw = np.deg2rad(rng.uniform(-max_yaw, max_yaw)) + (np.pi if rng.random() < back_view else 0.0)
    c, s = np.cos(yaw), np.sin(yaw)
    x = joints[..., 0] * c + joints[..., 2] * s
    depth = -joints[..., 0] * s + joints[..., 2] * c
    y = joints[..., 1]
    size = rng.uniform(70, 180)  # body height in pixels
    px, py = x * size, -y * size
    # Place the trajectory inside the frame where it fits; wide walks may leave the frame.
    margin = 8
    lo_x, hi_x = px.min(), px.max()
    free_x = FRAME_WIDTH - 2 * margin - (hi_x - lo_x)
    off_x = margin - lo_x + (rng.uniform(0, free_x) if free_x > 0 else free_x / 2)
    lo_y, hi_y = py.min(), py.max()
    free_y = FRAME_HEIGHT - 2 * margin - (hi_y - lo_y)
    off_y = margin - lo_y + (rng.uniform(0, free_y) if free_y > 0 else free_y / 2)
    xy = np.stack([px + off_x, py + off_y], -1)
    return xy, depth, size


def render_video(path: Path, xy: np.ndarray, depth: np.ndarray, size: float,
                 rng: np.random.Generator, noise_px: float, drop_prob: float) -> int:
    """Draw the markers frame by frame into an MJPG .avi at ``path`` (atomically); returns T."""
    n_frames = len(xy)
    xy = xy + rng.normal(0, noise_px, xy.shape)
    visible = rng.random(depth.shape) >= drop_prob
    if rng.random() < 0.3:  # one marker hidden for a stretch of frames (occlusion, tape loss)
        j, start = rng.integers(NUM_JOINTS), rng.integers(n_frames)
        visible[start:start + int(rng.integers(5, 20)), j] = False
    radius = max(2, int(round(0.028 * size)))
    order = np.argsort(depth, axis=1)  # far markers first, near ones drawn over them
    pts = np.round(xy * 16).astype(np.int32)  # 4 fractional bits for sub-pixel drawing
    write_marker_video(path, [(pts, visible, order)], radius, rng)
    return n_frames


def write_marker_video(path: Path, figures: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                       radius: int, rng: np.random.Generator) -> None:
    """Draw figures on a blurred-noise background into an MJPG video at ``path``, atomically.
    Each figure is (markers T x 18 x 2 in 1/16 pixels, visible T x 18, drawing order T x 18)."""
    palette = [tuple(int(v) for v in c) for c in marker_palette()]
    background = rng.integers(0, 50, (FRAME_HEIGHT, FRAME_WIDTH, 1), dtype=np.uint8)
    background = np.repeat(cv2.GaussianBlur(background, (0, 0), 3)[..., None], 3, axis=2)
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), FPS,
                                 (FRAME_WIDTH, FRAME_HEIGHT))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write MJPG video to {tmp}")
        for f in range(len(figures[0][0])):
            frame = background.copy()
            for pts, visible, order in figures:
                for j in order[f]:
                    if visible[f, j]:
                        cv2.circle(frame, (int(pts[f, j, 0]), int(pts[f, j, 1])), radius * 16,
                                   palette[j], -1, cv2.LINE_AA, 4)
            writer.write(frame)
        writer.release()


def split_assignment(n_subjects: int, split: int) -> dict[int, int]:
    """HMDB51-style code per subject for split k: 1 = train, 2 = test, 0 = unused.

    Each split holds out a different block of ~30% of the subjects for testing and one
    subject as unused, so test actors are never seen in training."""
    n_test = max(1, round(0.3 * n_subjects))
    start = (split - 1) * n_test
    test = {(start + i) % n_subjects for i in range(n_test)}
    unused = {(start + n_test) % n_subjects} if n_subjects > n_test + 1 else set()
    return {s: 2 if s in test else 0 if s in unused else 1 for s in range(n_subjects)}


def generate(root: str | os.PathLike, classes: int = 10, videos_per_class: int = 30,
             subjects: int = 10, min_frames: int = 30, max_frames: int = 90,
             noise_px: float = 0.8, drop_prob: float = 0.03, seed: int = 0,
             splits: int = 3) -> list[Path]:
    """Write the demo dataset under ``root`` (videos/<class>/*.avi, splits/*.txt); returns videos."""
    if not 2 <= classes <= len(ACTIONS):
        raise ValueError(f"demo classes must be in 2..{len(ACTIONS)}, got {classes}")
    if not 1 <= subjects <= len(SUBJECTS):
        raise ValueError(f"demo subjects must be in 1..{len(SUBJECTS)}, got {subjects}")
    if not 2 <= min_frames <= max_frames:
        raise ValueError(f"need 2 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    root = Path(root)
    people = [make_subject(np.random.default_rng([seed, 7919, s])) for s in range(subjects)]
    split_dir = root / "splits"
    split_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    jobs = [(c, v) for c in range(classes) for v in range(videos_per_class)]
    for c, v in tqdm(jobs, desc="demo videos", mininterval=2.0):
        action = ACTIONS[c]
        subject = v % subjects
        rng = np.random.default_rng([seed, c, v])
        n_frames = int(rng.integers(min_frames, max_frames + 1))
        joints = skeleton_3d(action, n_frames, people[subject], rng)
        xy, depth, size = project(joints, rng)
        name = f"{SUBJECTS[subject]}_{action}_{v // subjects:02d}.avi"
        path = root / "videos" / action / name
        path.parent.mkdir(parents=True, exist_ok=True)
        render_video(path, xy, depth, size, rng, noise_px, drop_prob)
        written.append(path)
    for k in range(1, splits + 1):
        codes = split_assignment(subjects, k)
        for c in range(classes):
            lines = [f"{SUBJECTS[v % subjects]}_{ACTIONS[c]}_{v // subjects:02d}.avi "
                     f"{codes[v % subjects]} \n" for v in range(videos_per_class)]
            with atomic_path(split_dir / f"{ACTIONS[c]}_test_split{k}.txt") as tmp:
                tmp.write_text("".join(lines), encoding="utf-8")
    log.info("wrote %d demo videos of %d classes under %s", len(written), classes, root)
    return written
