"""NTU RGB+D (60 and 120) ``.skeleton`` files to the skeleton pickle.

A file is text: the frame count, then per frame the body count and per body one line of 10
values (bodyID, clippedEdges, hand confidences and states, isRestricted, leanX, leanY,
trackingState), the joint count (25) and 25 lines of 12 values (x, y, z, depthX, depthY,
colorX, colorY, orientation W X Y Z, trackingState). The 2D keypoints are (colorX, colorY), the
joint's pixel in the 1920 x 1080 RGB video; the score is trackingState / 2 (tracked 1, inferred
0.5, not tracked 0). Bodies are persons by bodyID; the ``max_people`` bodies present in most
frames are kept (NTU's actions have one or two performers; the sensor sometimes adds spurious
bodies), the rest noted. Joints map to COCO-17 by name: Kinect's head becomes the nose; eyes
and ears are absent (score 0).

File names ``SsssCcccPpppRrrrAaaa`` give the class (A, ``A001`` = label 0) and the splits:
cross-subject (``xsub_train``: the training subjects of the NTU RGB+D 120 paper, whose first 20
are NTU-60's; the others ``xsub_val``), cross-view (``xview_train``: cameras 2 and 3,
``xview_val``: camera 1) and cross-setup (``xset_train``: even setups, ``xset_val``: odd).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from jmrn.errors import UserError
from jmrn.keypoints_io.pickle_io import Conversion, annotation, value_problem
from jmrn.pose.keypoints import reorder

# Kinect v2's 25 joints in NTU's order, named as our layouts name joints.
KINECT25: tuple[str, ...] = (
    "spine_base", "spine_mid", "neck", "nose",  # Kinect's head
    "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot",
    "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
)
TRAIN_SUBJECTS = frozenset({
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50,
    52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94,
    95, 97, 98, 100, 103,
})
IMG_SHAPE = (1080, 1920)
FILE = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})\.skeleton$")
MAX_FRAMES = 100_000  # a frame count beyond this is a damaged header, not a recording


def splits(setup: int, camera: int, subject: int) -> dict[str, str]:
    """The published benchmark each protocol puts a recording in."""
    return {"xsub": "xsub_train" if subject in TRAIN_SUBJECTS else "xsub_val",
            "xview": "xview_train" if camera in (2, 3) else "xview_val",
            "xset": "xset_train" if setup % 2 == 0 else "xset_val"}


def number(token: str, what: str, whole: bool = False) -> float:
    """One value of the file; text, or a fraction where a count belongs, raises UserError."""
    try:
        value = float(token)
    except ValueError:
        raise UserError(f"{what} is {token!r}, not a number") from None
    if whole and not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise UserError(f"{what} is {token!r}, not a count")
    return value


def parse(text: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(T x B x 25 x 2 colour coordinates, T x B x 25 scores, body ids) of one file's text, B
    the number of distinct bodies (absent ones score 0)."""
    lines = text.split("\n")
    at = 0

    def line(what: str) -> list[str]:
        nonlocal at
        while at < len(lines) and not lines[at].strip():
            at += 1
        if at >= len(lines):
            raise UserError(f"ends early: expected {what} at line {at + 1}")
        at += 1
        return lines[at - 1].split()

    def count(what: str) -> int:
        fields = line(what)
        if len(fields) != 1:
            raise UserError(f"line {at}: expected {what} (one number), got {len(fields)} values")
        return int(number(fields[0], f"line {at}: {what}", whole=True))

    n_frames = count("the frame count")
    if n_frames > MAX_FRAMES:
        raise UserError(f"frame count {n_frames} is beyond {MAX_FRAMES}")
    ids: dict[str, int] = {}
    found: list[tuple[int, int, np.ndarray]] = []  # (frame, body, 25 x 12 values)
    for t in range(n_frames):
        for _ in range(count(f"the body count of frame {t + 1}")):
            info = line(f"a body line of frame {t + 1}")
            if len(info) != 10:
                raise UserError(f"line {at}: a body line has 10 values, this one {len(info)}")
            if count("the joint count") != len(KINECT25):
                raise UserError(f"line {at}: joint count is not {len(KINECT25)}")
            values = np.empty((len(KINECT25), 12))
            for j in range(len(KINECT25)):
                fields = line(f"joint {j + 1}")
                if len(fields) != 12:
                    raise UserError(f"line {at}: a joint line has 12 values, this one {len(fields)}")
                values[j] = [number(v, f"line {at}") for v in fields]
            found.append((t, ids.setdefault(info[0], len(ids)), values))
    kp = np.zeros((n_frames, len(ids), len(KINECT25), 2), np.float32)
    score = np.zeros(kp.shape[:-1], np.float32)
    for t, b, values in found:
        kp[t, b] = values[:, 5:7]
        score[t, b] = values[:, 11] / 2
    return kp, score, list(ids)


def convert(root: str | os.PathLike, out_names: tuple[str, ...], max_people: int = 2) -> Conversion:
    """Every ``S*C*P*R*A*.skeleton`` under ``root``; others are skipped with their reason."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"folder {root} does not exist")
    if max_people < 1:
        raise UserError(f"--max-people must be at least 1, not {max_people}")
    files = sorted(p for p in root.rglob("*.skeleton") if p.is_file())
    actions = max((int(m.group(5)) for p in files if (m := FILE.match(p.name))), default=0)
    n_classes = 60 if actions <= 60 else 120  # NTU RGB+D or NTU RGB+D 120
    result = Conversion(classes=[f"A{a:03d}" for a in range(1, n_classes + 1)])
    for path in files:
        found = FILE.match(path.name)
        if not found:
            result.skip(str(path), "name is not SsssCcccPpppRrrrAaaa.skeleton")
            continue
        setup, camera, subject, _, action = (int(v) for v in found.groups())
        if not 1 <= action <= n_classes:
            result.skip(str(path), f"action {action} is not one of NTU's 1..{n_classes}")
            continue
        try:
            kp, score, ids = parse(path.read_text(encoding="ascii"))
        except (UserError, UnicodeDecodeError) as exc:
            result.skip(str(path), str(exc) if isinstance(exc, UserError) else f"not ASCII text ({exc})")
            continue
        why = value_problem(np.moveaxis(kp, 1, 0), np.moveaxis(score, 1, 0)) if ids else \
            "no body in any frame"
        if why is not None:
            result.skip(str(path), why)
            continue
        present = (score > 0).any(axis=2).sum(axis=0)  # frames each body has a tracked joint in
        keep = np.sort(np.argsort(-present, kind="stable")[:max_people])
        if len(keep) < len(ids):
            result.notes.append((str(path), f"kept {len(keep)} of {len(ids)} bodies (those in most "
                                            "frames; --max-people)"))
        kp, score = reorder(np.moveaxis(kp[:, keep], 1, 0), np.moveaxis(score[:, keep], 1, 0),
                            KINECT25, out_names)
        result.add(str(path), annotation(path.stem, action - 1, kp, score, IMG_SHAPE),
                   splits(setup, camera, subject))
    return result
