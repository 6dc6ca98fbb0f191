"""What jobs ask a scheduler for (jmrn.resources), one override at a time, which SLURM
profile `--profile slurm` finds (jmrn.profiles), and how a training process reuses memory."""
from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jmrn import resources
from jmrn.cli import merged_config
from jmrn.errors import UserError
from jmrn.profiles import check_profile, requested_profiles

REPO = Path(__file__).resolve().parents[1]


def config_with(overlay: str, tmp_path: Path) -> dict:
    path = tmp_path / "overlay.yaml"
    path.write_text(overlay)
    return merged_config([str(REPO / "config" / "demo.yaml"), str(path)])


def test_defaults_come_from_the_schema_and_one_key_overrides_one_key(tmp_path):
    cfg = config_with("resources:\n  train: {mem_mb: 9000}\n", tmp_path)
    assert cfg["resources"]["train"] == {"mem_mb": 9000, "runtime": 720}  # runtime kept
    assert resources.threads(cfg, "manifest") == 2 and resources.threads(cfg, "pose") == 2
    assert resources.threads(cfg, "train") == resources.threads(cfg, "export") == cfg["train"]["threads"]
    assert resources.memory_mb(cfg, "train") == 9000
    assert resources.memory_mb(cfg, "train", attempt=2, data_mb=1000) == 2 * (9000 + 1500)
    assert resources.runtime_min(cfg, "pose", attempt=3) == 3 * 240


def test_map_memory_at_paper_size():
    # 5,100 videos of 18 x 3 x 64 x 86 float16 maps: an HMDB51 split at the paper's size.
    assert resources.maps_mb(5100, (18, 3, 64, 86)) == 3032


@pytest.mark.parametrize("overlay,gpus", [
    ("{}", {"pose": 0, "train": 0, "export": 0, "manifest": 0}),
    ("pose: {backend: openpifpaf}", {"pose": 1, "train": 0, "export": 0}),
    ("pose: {backend: openpifpaf, options: {openpifpaf: {device: cpu}}}", {"pose": 0}),
    ("train: {gpus: 2}", {"pose": 0, "train": 2, "export": 2, "potion": 0}),
])
def test_gpus_only_where_used(tmp_path, overlay, gpus):
    cfg = config_with(overlay + "\n", tmp_path)
    for kind, n in gpus.items():
        assert resources.uses_gpu(cfg, kind) == n
        assert resources.fixed_resources(cfg, kind).get("gpu", 0) == n


def test_partitions_and_account_per_kind(tmp_path):
    cfg = config_with("train: {gpus: 1}\n", tmp_path)
    assert resources.placement(cfg, "train") == {}  # unset: the cluster's defaults, or the CLI's
    cfg = config_with("train: {gpus: 1}\nslurm: {cpu_partition: c, gpu_partition: g, account: lab}\n",
                      tmp_path)
    assert resources.placement(cfg, "train") == {"slurm_partition": "g", "slurm_account": "lab"}
    assert resources.placement(cfg, "potion") == {"slurm_partition": "c", "slurm_account": "lab"}


def test_set_resources_on_the_command_line_keeps_the_other_keys(finished_run, tmp_path):
    """The README's `--set-resources train:mem_mb=...` with the SLURM profile: memory changes,
    the time limit and threads stay (the profile holds no resources block to replace)."""
    work = tmp_path / "run"
    shutil.copytree(finished_run, work)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
         str(work), "--configfile", str(work / "config.yaml"), "-n", "results/demo/split1/jmrn/seed0/model.pt",
         "--profile", str(REPO / "workflow/profiles/slurm"), "--forcerun",
         "results/demo/split1/jmrn/seed0/model.pt", "--set-resources", "train:mem_mb=9999"],
        cwd=work, capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    line = next(line for line in text.splitlines() if "resources:" in line and "mem_mb" in line)
    assert "mem_mb=9999" in line and re.search(r"\bruntime=720\b", line), line


def test_requested_profiles():
    assert requested_profiles(["snakemake", "--profile", "slurm", "all"], {}) == ["slurm"]
    assert requested_profiles(["snakemake", "--profile=x/y"], {}) == ["x/y"]
    assert requested_profiles(["snakemake", "all"], {"SNAKEMAKE_PROFILE": "slurm"}) == ["slurm"]
    assert requested_profiles(["snakemake", "all"], {}) == []


def test_another_checkouts_profile_stops_the_run(tmp_path, monkeypatch):
    other = tmp_path / "other" / "workflow" / "profiles" / "slurm"
    other.mkdir(parents=True)
    shutil.copy(REPO / "workflow/profiles/slurm/config.yaml", other / "config.yaml")
    (tmp_path / "xdg" / "snakemake").mkdir(parents=True)
    (tmp_path / "xdg" / "snakemake" / "slurm").symlink_to(other)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"another checkout's jmrn profile.*run.sh link-profile"):
        check_profile(["snakemake", "--profile", "slurm", "all"], REPO)
    check_profile(["snakemake", "--profile", "slurm", "all"], tmp_path / "other")  # its own: fine
    check_profile(["snakemake", "--profile", str(REPO / "workflow/profiles/slurm")], REPO)
    (tmp_path / "site").mkdir()  # a user's own profile of that name is theirs to use
    (tmp_path / "site" / "config.yaml").write_text("executor: slurm\n")
    (tmp_path / "xdg" / "snakemake" / "slurm").unlink()
    (tmp_path / "xdg" / "snakemake" / "slurm").symlink_to(tmp_path / "site")
    check_profile(["snakemake", "--profile", "slurm", "all"], REPO)


_ALLOCATE_AND_FREE = """
import sys, torch
from jmrn.device import keep_freed_memory
from jmrn.resources import resident_mib
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
held = resident_mib(peak=False)
del block
print(kept, held - resident_mib(peak=False))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_training_processes_keep_freed_memory_for_reuse():
    """A 64 MiB block goes back to the kernel when freed by default; after keep_freed_memory
    (called by the training and export jobs) it stays for the next step's tensors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}

    def released(mode: str) -> tuple[str, float]:
        out = subprocess.run([sys.executable, "-c", _ALLOCATE_AND_FREE, mode], check=True,
                             capture_output=True, text=True, env=env).stdout.split()
        return out[0], float(out[1])

    assert released("default")[1] > 48
    kept, freed = released("keep")
    assert kept == "True" and freed < 8
