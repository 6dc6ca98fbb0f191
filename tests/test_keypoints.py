import numpy as np
import pytest

from jmrn.pose.keypoints import KeypointsBackend, convert_layout, render_heatmaps
from jmrn.pose.skeleton import COCO17, JOINTS


def test_peak_at_keypoint_subpixel():
    kp = np.array([[[[12.3, 7.6]]]], np.float32)  # M=1, T=1, V=1
    maps = render_heatmaps(kp, np.ones((1, 1, 1), np.float32), (20, 30), (20, 30), sigma=1.0)
    m = maps[0, 0]
    y, x = np.unravel_index(m.argmax(), m.shape)
    assert (y, x) == (8, 12)
    # Centre of mass of the Gaussian recovers the sub-pixel position.
    yy, xx = np.mgrid[:20, :30]
    assert abs((m * xx).sum() / m.sum() - 12.3) < 0.02
    assert abs((m * yy).sum() / m.sum() - 7.6) < 0.02


def test_scaling_keeps_aspect_and_centres():
    # 100x200 source into 32x32: scale 0.16, vertical offset 8; source centre -> output centre.
    kp = np.array([[[[99.5, 49.5]]]], np.float32)
    m = render_heatmaps(kp, np.ones((1, 1, 1)), (100, 200), (32, 32), sigma=0.6)[0, 0]
    y, x = np.unravel_index(m.argmax(), m.shape)
    assert (y, x) in {(15, 15), (15, 16), (16, 15), (16, 16)}


def test_persons_combine_by_max_and_score_scales_peak():
    kp = np.array([[[[5, 5]]], [[[5, 5]]]], np.float32)
    sc = np.array([[[0.4]], [[0.9]]], np.float32)
    m = render_heatmaps(kp, sc, (10, 10), (10, 10))
    assert m.shape == (1, 1, 10, 10)
    assert m.max() == pytest.approx(0.9, abs=1e-5)


def test_coco17_gets_neck_from_shoulders():
    kp = np.zeros((1, 2, 17, 2), np.float32)
    sc = np.ones((1, 2, 17), np.float32)
    kp[..., COCO17.index("left_shoulder"), :] = [10, 20]
    kp[..., COCO17.index("right_shoulder"), :] = [30, 24]
    sc[..., COCO17.index("right_shoulder")] = 0.5
    out, score = convert_layout(kp, sc, "coco17")
    assert out.shape == (1, 2, 18, 2)
    np.testing.assert_allclose(out[0, 0, JOINTS.index("neck")], [20, 22])
    assert score[0, 0, JOINTS.index("neck")] == 0.5


def test_openpose_reordering():
    from jmrn.pose.keypoints import OPENPOSE18

    kp = np.arange(18 * 2, dtype=np.float32).reshape(1, 1, 18, 2)
    out, _ = convert_layout(kp, np.ones((1, 1, 18)), "openpose18")
    for name in ("nose", "neck", "left_wrist", "right_ankle"):
        np.testing.assert_allclose(out[0, 0, JOINTS.index(name)], kp[0, 0, OPENPOSE18.index(name)])


def test_backend_streams_uint8_batches():
    rng = np.random.default_rng(0)
    video = {"keypoint": rng.uniform(0, 100, (2, 50, 17, 2)), "keypoint_score": rng.random((2, 50, 17)),
             "img_shape": (120, 160)}
    backend = KeypointsBackend(height=12, width=16, batch_size=16)
    batches = list(backend.heatmaps(video))
    assert [b.shape for b in batches] == [(16, 18, 12, 16)] * 3 + [(2, 18, 12, 16)]
    assert all(b.dtype == np.uint8 for b in batches)
