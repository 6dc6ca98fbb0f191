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
    snakemake(work, "all")
    return work
