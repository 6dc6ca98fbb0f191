"""Joint layouts used throughout the pipeline: names, left/right flip pairs and PAA groups.

The canonical layout is COCO-17 followed by the neck (18 joints, as the paper); every
backend converts what it produces into this order before heatmaps are stored.
"""
from __future__ import annotations

COCO17: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
JOINTS: tuple[str, ...] = COCO17 + ("neck",)
NUM_JOINTS = len(JOINTS)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINTS)}

# Pose-aware augmentation groups (paper §3.3); the torso (hips, neck) is never group-jittered.
GROUPS: dict[str, tuple[str, ...]] = {
    "head": ("nose", "left_eye", "right_eye", "left_ear", "right_ear"),
    "left_arm": ("left_shoulder", "left_elbow", "left_wrist"),
    "right_arm": ("right_shoulder", "right_elbow", "right_wrist"),
    "left_leg": ("left_knee", "left_ankle"),
    "right_leg": ("right_knee", "right_ankle"),
    "torso": ("left_hip", "right_hip", "neck"),
}
JITTERED_GROUPS: tuple[str, ...] = ("head", "left_arm", "right_arm", "left_leg", "right_leg")


def flip_permutation(joints: tuple[str, ...] = JOINTS) -> list[int]:
    """Index permutation that swaps every left_* joint with its right_* twin (for horizontal flips)."""
    index = {name: i for i, name in enumerate(joints)}
    perm = []
    for name in joints:
        if name.startswith("left_"):
            twin = "right_" + name[len("left_"):]
        elif name.startswith("right_"):
            twin = "left_" + name[len("right_"):]
        else:
            twin = name
        perm.append(index[twin])
    return perm


def group_index(joints: tuple[str, ...] = JOINTS) -> list[int]:
    """Group id per joint, numbered in the order of ``GROUPS``."""
    lookup = {j: g for g, (_, members) in enumerate(GROUPS.items()) for j in members}
    return [lookup[name] for name in joints]


# Bones drawn when a skeleton is overlaid on a frame (predict's contact sheets).
BONES: tuple[tuple[str, str], ...] = (
    ("nose", "neck"), ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
    ("right_eye", "right_ear"), ("neck", "left_shoulder"), ("neck", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("neck", "left_hip"), ("neck", "right_hip"), ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
)
