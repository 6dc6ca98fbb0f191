"""UTD-MHAD's published skeletons (``Skeleton.zip``: ``a<action>_s<subject>_t<trial>_skeleton.mat``)
to the skeleton pickle.

Each file holds ``d_skel``: 20 joints x (X, Y, Z) x T frames, Kinect v1 camera coordinates in
metres (X to the sensor's side, Y up, Z away from it). They are projected to 2D the way the
Kinect SDK maps a skeleton point into its 640 x 480 image (``NuiTransformSkeletonToDepthImage``,
nominal focal length 285.63 px at 320 x 240):

    u = 320 + 571.26 * X / Z,    v = 240 - 571.26 * Y / Z    (pixels of a 640 x 480 frame)

a perspective projection, so the 2D pose is what a camera at the sensor sees (near limbs larger,
as in the RGB videos, which are 640 x 480) and comparable with detector keypoints; an
orthographic (X, Y) view would need an arbitrary scale and loses that. Joints map to COCO-17 by
name: Kinect's head becomes the nose; eyes and ears are absent (score 0); shoulder centre,
spine, hip centre, hands and feet have no COCO joint. Every projected joint has score 1
(the files carry no confidence). Classes are the 27 actions (``a1`` = label 0); the split is
the standard cross-subject protocol: odd subjects (1, 3, 5, 7) ``xsub_train``, even ones
``xsub_val``. Video ids are ``a<action>_s<subject>_t<trial>``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from jmrn.errors import UserError
from jmrn.keypoints_io.pickle_io import Conversion, annotation, value_problem
from jmrn.pose.keypoints import reorder

ACTIONS: tuple[str, ...] = (
    "swipe_left", "swipe_right", "wave", "clap", "throw", "arm_cross", "basketball_shoot",
    "draw_x", "draw_circle_cw", "draw_circle_ccw", "draw_triangle", "bowling", "boxing",
    "baseball_swing", "tennis_swing", "arm_curl", "tennis_serve", "push", "knock", "catch",
    "pickup_throw", "jog", "walk", "sit_to_stand", "stand_to_sit", "lunge", "squat",
)
# UTD-MHAD's joint order (its skeleton figure), named as our layouts name joints.
KINECT20: tuple[str, ...] = (
    "nose",  # Kinect's head
    "shoulder_center", "spine", "hip_center",
    "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot",
)
FOCAL = 571.26  # Kinect v1 nominal depth focal length (285.63 px at 320 x 240), at 640 x 480
IMG_SHAPE = (480, 640)
FILE = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_skeleton\.mat$")


def project(xyz: np.ndarray) -> np.ndarray:
    """Kinect camera coordinates (..., 3) in metres to 640 x 480 pixel coordinates (..., 2)."""
    z = xyz[..., 2]
    return np.stack([320 + FOCAL * xyz[..., 0] / z, 240 - FOCAL * xyz[..., 1] / z], axis=-1)


def read_skeleton(path: str | os.PathLike) -> np.ndarray:
    """``d_skel`` of one file as T x 20 x 3 (metres); a file that is not one raises UserError."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises many kinds on a damaged file
        if isinstance(exc, (OSError, MemoryError)) and getattr(exc, "errno", 0) is not None:
            raise  # the machine's fault, not the file's
        raise UserError(f"not a MATLAB file scipy can read ({type(exc).__name__}: {exc})") from exc
    if "d_skel" not in mat:
        raise UserError(f"no variable d_skel (it has {sorted(k for k in mat if not k.startswith('__'))})")
    skel = mat["d_skel"]
    if skel.dtype.kind not in "iuf" or skel.ndim != 3 or skel.shape[:2] != (20, 3) or skel.shape[2] == 0:
        raise UserError(f"d_skel is {skel.dtype} {skel.shape}, not numbers of 20 x 3 x T (T > 0)")
    return np.moveaxis(skel.astype(np.float64), 2, 0)


def convert(root: str | os.PathLike, out_names: tuple[str, ...]) -> Conversion:
    """Every ``a*_s*_t*_skeleton.mat`` under ``root``; others are skipped with their reason."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"folder {root} does not exist")
    result = Conversion(classes=list(ACTIONS))
    for path in sorted(p for p in root.rglob("*.mat") if p.is_file()):
        found = FILE.match(path.name)
        if not found:
            result.skip(str(path), "name is not a<action>_s<subject>_t<trial>_skeleton.mat")
            continue
        action, subject, trial = (int(v) for v in found.groups())
        if not 1 <= action <= len(ACTIONS):
            result.skip(str(path), f"action {action} is not one of UTD-MHAD's 1..{len(ACTIONS)}")
            continue
        try:
            xyz = read_skeleton(path)
        except UserError as exc:
            result.skip(str(path), str(exc))
            continue
        bad = ~np.isfinite(xyz).all(axis=-1) | ~(xyz[..., 2] > 0)
        if bad.any():
            t, j = np.argwhere(bad)[0]
            xyz_text = np.round(xyz[t, j], 4).tolist()
            result.skip(str(path), f"joint {j + 1} of frame {t + 1} cannot be projected (X, Y, Z = "
                                   f"{xyz_text}; Z must be a finite depth > 0)")
            continue
        kp = project(xyz)[None].astype(np.float32)
        score = np.ones(kp.shape[:-1], np.float32)
        why = value_problem(kp, score)
        if why is not None:
            result.skip(str(path), why)
            continue
        kp, score = reorder(kp, score, KINECT20, out_names)
        subset = "xsub_train" if subject % 2 else "xsub_val"
        result.add(str(path), annotation(f"a{action}_s{subject}_t{trial}", action - 1, kp, score,
                                         IMG_SHAPE), {"split": subset})
    return result
