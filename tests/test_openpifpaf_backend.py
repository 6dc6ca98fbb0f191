"""openpifpaf backend with the real network (random weights: no checkpoint download here)."""
import numpy as np
import pytest
import torch

pytest.importorskip("openpifpaf")

from jmrn.pose.base import make_backend  # noqa: E402
from jmrn.datasets.report import DatasetError  # noqa: E402
from jmrn.pose.openpifpaf_backend import (  # noqa: E402
    OpenPifPafBackend, build_network, save_state_dict)
from jmrn.io import sha256_file
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


def test_state_dict_checkpoint_loads_without_unpickling(tmp_path, frames, backend):
    torch.manual_seed(1)
    net = build_network(None)
    path = tmp_path / "my model.pt"
    torch.save(net.state_dict(), path)
    local = OpenPifPafBackend(24, 32, checkpoint=str(path))
    ref = OpenPifPafBackend.__new__(OpenPifPafBackend)
    ref.__dict__.update(local.__dict__)
    ref.net = net.eval()
    np.testing.assert_allclose(local.frames_to_heatmaps(frames), ref.frames_to_heatmaps(frames), atol=1e-6)
    assert local.attrs()["checkpoint"] == str(path)


def test_pickled_model_loads_only_with_its_sha256(tmp_path, frames):
    torch.manual_seed(1)
    net = build_network(None)
    path = tmp_path / "release.pkl"  # openpifpaf's release format: a whole pickled model
    torch.save({"model": net, "epoch": 3}, path)
    with pytest.raises(DatasetError, match=r"refusing to unpickle .*release\.pkl"):
        OpenPifPafBackend(24, 32, checkpoint=str(path))
    with pytest.raises(DatasetError, match="refusing"):
        OpenPifPafBackend(24, 32, checkpoint=str(path), checkpoint_sha256="0" * 64)
    local = OpenPifPafBackend(24, 32, checkpoint=str(path), checkpoint_sha256=sha256_file(path))
    torch.testing.assert_close(local.net.state_dict(), net.state_dict())
    converted = tmp_path / "converted.pt"
    save_state_dict(str(path), sha256_file(path), str(converted))
    again = OpenPifPafBackend(24, 32, checkpoint=str(converted))
    torch.testing.assert_close(again.net.state_dict(), net.state_dict())
    with pytest.raises(DatasetError, match=r"its SHA-256 is [0-9a-f]{64}, not the 0+ given"):
        save_state_dict(str(path), "0" * 64, str(tmp_path / "x.pt"))  # a different download
    with pytest.raises(DatasetError, match="no such file; download openpifpaf's checkpoint"):
        save_state_dict(str(tmp_path / "not-there.pkl"), "0" * 64, str(tmp_path / "x.pt"))
    assert not (tmp_path / "x.pt").exists()


class RunsCode:
    """A pickle that runs a command when loaded (what a crafted checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch '{self.marker}'",))


def test_crafted_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    torch.save({"model": RunsCode(marker)}, path)
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        make_backend("openpifpaf", 24, 32, {"checkpoint": str(path)})
    assert not marker.exists()


def test_state_dict_of_another_network_is_one_line(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(DatasetError, match="do not fit openpifpaf's shufflenetv2k16"):
        OpenPifPafBackend(24, 32, checkpoint=str(path))


def test_device_quantisation_matches_the_stored_scale():
    from jmrn.pose.base import to_uint8
    from jmrn.pose.openpifpaf_backend import quantize

    x = np.concatenate([np.linspace(-0.1, 1.1, 2001), (np.arange(256) + 0.5) / 255]).astype(np.float32)
    assert np.array_equal(quantize(torch.from_numpy(x)).numpy(), to_uint8(x))


def test_video_heatmaps_are_the_batches_quantised(backend, frames, tmp_path):
    """The pipelined video path (one batch in flight) gives the same bytes, in order."""
    import cv2

    from jmrn.pose.base import to_uint8

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25,
                             (frames.shape[2], frames.shape[1]))
    for _ in range(4):
        for f in frames:
            writer.write(f)
    writer.release()
    from jmrn.video import iter_frame_batches

    decoded = np.concatenate(list(iter_frame_batches(path, backend.batch_size)))
    got = np.concatenate(list(backend.heatmaps({"path": str(path)})))
    assert len(got) == len(decoded) == 12
    assert np.array_equal(got, to_uint8(backend.frames_to_heatmaps(decoded)))


@pytest.mark.parametrize("checkpoint", ["shufflenetv2k16", "http://example.invalid/models/evil.pkl"])
def test_checkpoint_name_or_url_never_unpickles_what_the_hub_cache_holds(tmp_path, monkeypatch, checkpoint):
    """A name or URL resolves to torch's hub cache, where anyone could have planted a file:
    without checkpoint_sha256 it is refused like any pickled model; nothing is downloaded."""
    from openpifpaf.network.factory import CHECKPOINT_URLS

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(DatasetError, match="is not a local file"):  # nothing cached, no download
        make_backend("openpifpaf", 24, 32, {"checkpoint": checkpoint})
    marker = tmp_path / "pwned"
    url = CHECKPOINT_URLS.get(checkpoint, checkpoint)
    planted = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    planted.parent.mkdir(parents=True)
    torch.save({"model": RunsCode(marker)}, planted)
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        make_backend("openpifpaf", 24, 32, {"checkpoint": checkpoint})
    assert not marker.exists()
