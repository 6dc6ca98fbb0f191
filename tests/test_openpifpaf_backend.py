"""openpifpaf backend with the real network (random weights: no checkpoint download here)."""
import numpy as np
import pytest
import torch

pytest.importorskip("openpifpaf")

from jmrn.pose.base import make_backend  # noqa: E402
from jmrn.pose.openpifpaf_backend import OpenPifPafBackend, build_network  # noqa: E402
from jmrn.pose.skeleton import JOINTS  # noqa: E402


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (3, 120, 160, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def backend():
    torch.manual_seed(0)
    return make_backend("openpifpaf", 24, 32, {"checkpoint": None, "batch_size": 3})


def test_shapes_ranges_and_neck(backend, frames):
    maps = backend.frames_to_heatmaps(frames)
    assert maps.shape == (3, 18, 24, 32) and maps.dtype == np.float32
    assert 0 <= maps.min() and maps.max() <= 1 and maps.max() > 0
    ls, rs, neck = (JOINTS.index(n) for n in ("left_shoulder", "right_shoulder", "neck"))
    np.testing.assert_allclose(maps[:, neck], 0.5 * (maps[:, ls] + maps[:, rs]), atol=1e-6)


def test_batch_equals_single_frames(backend, frames):
    batch = backend.frames_to_heatmaps(frames)
    single = np.concatenate([backend.frames_to_heatmaps(frames[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_cif_field_covers_the_frame(backend, frames):
    conf = backend.cif_confidence(frames)
    assert conf.shape == (3, 17, (120 - 1) // 16 + 1, (160 - 1) // 16 + 1)


def test_local_checkpoint_file_loads(tmp_path, frames, backend):
    torch.manual_seed(1)
    net = build_network(None)
    path = tmp_path / "my model.pkl"  # openpifpaf's checkpoint format: a whole pickled model
    torch.save({"model": net, "epoch": 3}, path)
    local = OpenPifPafBackend(24, 32, checkpoint=str(path))
    ref = OpenPifPafBackend.__new__(OpenPifPafBackend)
    ref.__dict__.update(local.__dict__)
    ref.net = net.eval()
    np.testing.assert_allclose(local.frames_to_heatmaps(frames), ref.frames_to_heatmaps(frames), atol=1e-6)
    assert local.attrs()["checkpoint"] == str(path)
