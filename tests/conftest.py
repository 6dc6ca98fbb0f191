"""Shared fixtures: a tiny generated demo dataset and helpers to write configs."""
from __future__ import annotations

from pathlib import Path

import pytest

from jmrn.datasets import demo


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four classes, six videos each, short clips: generated once per test session."""
    root = tmp_path_factory.mktemp("demo")
    demo.generate(root, classes=4, videos_per_class=6, subjects=6, min_frames=12, max_frames=20,
                  seed=3, splits=3)
    return root


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo config (test_pipeline.tiny_config) run through the whole Snakemake DAG."""
    import yaml

    from test_pipeline import snakemake, tiny_config

    work = tmp_path_factory.mktemp("pipeline")
    (work / "config.yaml").write_text(yaml.safe_dump(tiny_config(work)))
    proc = snakemake(work, "all")
    (work / "run.err").write_text(proc.stderr)  # what the run logged
    return work


def labelled_potion_store(path: Path, seed: int, n: int = 48):
    """A PoTion store of ``n`` videos of 3 classes (a bright block on a class-specific joint)
    at ``path``, and its manifest (split 1: 36 training videos, 12 test; groups of two)."""
    import numpy as np
    import pandas as pd

    from jmrn.store import write_potion_store

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    maps = rng.random((n, 18, 3, 12, 16)).astype(np.float16) * 0.1
    maps[np.arange(n), labels * 5, :, 4:8, 4:8] += 1
    ids = [f"vid {i:02d}" for i in range(n)]
    write_potion_store(path, ids, iter(maps), maps.shape[1:], {"channels": 3})
    return pd.DataFrame({"video_id": ids, "path": ids, "label": labels,
                         "label_name": [f"c{c}" for c in labels],
                         "split1": np.where(np.arange(n) < 36, "train", "test"),
                         "frames": 10, "fps": 25.0, "width": 16, "height": 12, "status": "ok",
                         "group": [f"g{i // 2}" for i in range(n)]})
