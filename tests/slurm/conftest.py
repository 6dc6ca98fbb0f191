"""The SLURM tests' shared fixture: the cluster's environment, or a skip where none runs."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory) -> dict:
    """The environment for SLURM commands, with a private XDG config (its own profile link)."""
    from test_slurm import slurm_is_up

    if not slurm_is_up():
        pytest.skip("no SLURM cluster (run tests/slurm/start-local-slurm.sh)")
    xdg = tmp_path_factory.mktemp("xdg")
    return {**os.environ, "XDG_CONFIG_HOME": str(xdg)}
