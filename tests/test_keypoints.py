import numpy as np
import pytest

from jmrn.pose.keypoints import KeypointsBackend, convert_layout, fit_transform, render_heatmaps
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


@pytest.mark.parametrize("people,sigma,truncate", [(1, 0.6, 3.0), (1, 1.3, 2.0), (3, 0.6, 3.0), (2, 2.5, 3.0)])
def test_windowed_rendering_is_the_whole_grid_one_within_the_bound(people, sigma, truncate):
    from jmrn.pose.base import to_uint8

    rng = np.random.default_rng(people)
    kp = rng.uniform(-40, 360, (people, 6, 18, 2)).astype(np.float32)  # some outside the frame
    score = rng.uniform(0, 1, (people, 6, 18)).astype(np.float32)
    score[0, 1, 2], kp[0, 2, 3, 0] = 0, np.nan  # missing joints
    whole = render_heatmaps(kp, score, (240, 320), (29, 41), sigma, truncate=None)
    windowed = render_heatmaps(kp, score, (240, 320), (29, 41), sigma, truncate=truncate)
    bound = score.max() * np.exp(-truncate**2 / 2)  # 0.011 at truncate 3
    assert (windowed <= whole).all() and (whole - windowed).max() <= bound
    assert np.abs(to_uint8(whole).astype(int) - to_uint8(windowed)).max() <= np.ceil(bound * 255)
    assert not ((windowed > 0) & (windowed < np.finfo(np.float32).tiny)).any()  # no subnormals
    if people == 1:  # inside each window: exactly the whole-grid values
        scale, dx, dy = fit_transform((240, 320), (29, 41))
        x = kp[0, ..., 0] * scale + dx - 0.5 * (1 - scale)  # T x V
        y = kp[0, ..., 1] * scale + dy - 0.5 * (1 - scale)
        inside = ((np.abs(np.arange(41) - x[..., None, None]) <= truncate * sigma)
                  & (np.abs(np.arange(29)[:, None] - y[..., None, None]) <= truncate * sigma))
        assert inside.sum() > 100
        np.testing.assert_array_equal(windowed[inside], whole[inside])
        assert (windowed[~inside] == 0).all()


def test_windowed_rendering_at_the_edges_and_on_tiny_grids():
    kp = np.array([[[[0, 0], [319, 239], [-3, 120], [160, 241], [1e6, 5]]]], np.float32)
    score = np.ones((1, 1, 5), np.float32)
    for out in ((2, 3), (1, 1), (32, 43)):
        whole = render_heatmaps(kp, score, (240, 320), out, 2.0, truncate=None)
        windowed = render_heatmaps(kp, score, (240, 320), out, 2.0)
        assert (whole - windowed).max() <= np.exp(-4.5) and (windowed <= whole).all()
        assert windowed.max() == whole.max()
