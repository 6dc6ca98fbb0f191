import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jmrn.potion import PotionAccumulator, hat_weights, potion, potion_reference, relative_time


def stream(h: np.ndarray, batch: int, **kw) -> np.ndarray:
    return potion((h[i:i + batch] for i in range(0, len(h), batch)), len(h), **kw)


def test_hat_weights_c3_and_c2():
    t = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(hat_weights(t, 3), [[1, 0, 0], [.5, .5, 0], [0, 1, 0], [0, .5, .5], [0, 0, 1]])
    np.testing.assert_allclose(hat_weights(t, 2), np.stack([1 - t, t], 1))
    for c in (2, 3, 4, 5):
        np.testing.assert_allclose(hat_weights(np.linspace(0, 1, 37), c).sum(1), 1.0)


def test_three_frame_video_by_hand():
    # J=1, 1x2 pixels; frames: [1,0], [0,1], [1,1]; t = 0, .5, 1 -> each frame owns one channel.
    h = np.array([[[[1.0, 0.0]]], [[[0.0, 1.0]]], [[[1.0, 1.0]]]], np.float32)
    u = stream(h, 2, channels=3, normalisation="area")
    np.testing.assert_allclose(u[0, :, 0, :], [[1, 0], [0, 1], [1, 1]], atol=1e-7)
    # C=2: weights (1, .5, 0) and (0, .5, 1); area-normalised by 1.5 each.
    u2 = stream(h, 1, channels=2)
    np.testing.assert_allclose(u2[0, :, 0, :], [[1 / 1.5, 0.5 / 1.5], [1 / 1.5, 1.5 / 1.5]], atol=1e-7)


def test_max_normalisation_divides_each_channel_by_its_peak():
    rng = np.random.default_rng(0)
    h = rng.random((9, 2, 4, 5)).astype(np.float32)
    u = stream(h, 4, channels=3, normalisation="max")
    np.testing.assert_allclose(u.max(axis=(2, 3)), 1.0, atol=1e-6)
    np.testing.assert_allclose(u, potion_reference(h, 3, "max"), atol=1e-6)


@pytest.mark.parametrize("batch", [1, 3, 7, 64])
@pytest.mark.parametrize("channels", [2, 3, 4, 5])
def test_streaming_equals_einsum_uint8(batch, channels):
    rng = np.random.default_rng(channels)
    h = rng.integers(0, 256, (23, 3, 6, 7), dtype=np.uint8)
    ref = potion_reference(h / 255.0, channels, "area", ("intensity", "normalized"))
    got = stream(h, batch, channels=channels, extra=("intensity", "normalized"))
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=1e-6)


def test_time_reversal_swaps_first_and_last_channel():
    rng = np.random.default_rng(1)
    h = rng.random((11, 2, 3, 4)).astype(np.float32)
    u, r = stream(h, 4), stream(h[::-1].copy(), 4)
    np.testing.assert_allclose(r[:, 0], u[:, 2], atol=1e-6)
    np.testing.assert_allclose(r[:, 2], u[:, 0], atol=1e-6)
    np.testing.assert_allclose(r[:, 1], u[:, 1], atol=1e-6)


def test_single_and_two_frame_videos():
    one = np.ones((1, 1, 2, 2), np.float32)
    np.testing.assert_allclose(stream(one, 1)[0, :, 0, 0], [0, 1, 0])  # t = 0.5
    two = np.stack([np.zeros((1, 2, 2)), np.ones((1, 2, 2))]).astype(np.float32)
    # t = 0 and 1: the middle channel gets no frame (weight sum 0) and stays 0, not NaN.
    np.testing.assert_allclose(stream(two, 2)[0, :, 0, 0], [0, 0, 1])
    assert relative_time(2).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("norm", ["area", "max"])
def test_no_person_gives_zeros_not_nan(norm):
    u = stream(np.zeros((5, 18, 4, 4), np.uint8), 2, normalisation=norm, extra=("normalized",))
    assert np.isfinite(u).all() and not u.any()


def test_frame_count_is_enforced():
    acc = PotionAccumulator(3, 3, (1, 2, 2))
    with pytest.raises(ValueError, match="more than the declared"):
        acc.update(np.zeros((4, 1, 2, 2), np.float32))
    acc.update(np.zeros((2, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="received 2"):
        acc.result()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="normalisation"):
        PotionAccumulator(3, 3, (1, 2, 2), normalisation="mean")
    with pytest.raises(ValueError, match="at least 2 channels"):
        hat_weights(np.zeros(2), 1)


@settings(max_examples=40, deadline=None)
@given(t=st.integers(1, 40), j=st.integers(1, 4), c=st.integers(2, 5), batch=st.integers(1, 9),
       seed=st.integers(0, 10_000))
def test_properties_shape_nonnegative_bounded(t, j, c, batch, seed):
    h = np.random.default_rng(seed).integers(0, 256, (t, j, 3, 4), dtype=np.uint8)
    u = stream(h, batch, channels=c)
    assert u.shape == (j, c, 3, 4)
    assert (u >= 0).all() and (u <= 1 + 1e-6).all()  # area: weighted mean of maps in [0, 1]


@pytest.mark.parametrize("batch", [5, 16, 37])
def test_streaming_spans_several_kernel_tiles(batch):
    """Joint maps larger than one pixel tile of the kernel (200 x 180 > 32768), groups of 8
    frames and single frames, and batches that straddle channel segments still equal the einsum."""
    from jmrn.potion import _TILE

    rng = np.random.default_rng(batch)
    h = rng.integers(0, 256, (37, 2, 200, 180), dtype=np.uint8)
    assert 200 * 180 > _TILE
    ref = potion_reference(h / 255.0, 3, "area")
    np.testing.assert_allclose(stream(h, batch), ref, atol=1e-6, rtol=1e-5)
