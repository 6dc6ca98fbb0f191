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
