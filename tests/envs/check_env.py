"""Build each conda env file's packages into a fresh virtualenv and run its rules there.

conda cannot be installed on our machines, so this stands in for `snakemake --sdm conda`: a
virtualenv with exactly the env file's pip packages (plus Snakemake, which conda jobs take from
the main installation), its post-deploy script run with that virtualenv first on PATH, then the
tiny demo pipeline run by that virtualenv's Snakemake up to (pose env: with the openpifpaf
backend, random weights, CPU) or from (torch env) the PoTion store. Snakemake's own
dependencies (PyYAML, jsonschema, ...) are in the virtualenv too, so a missing one of those is
caught by tests/test_envs.py, not here.

    .venv/bin/python tests/envs/check_env.py [envs/pose.yaml envs/torch.yaml] [--keep]

Needs PyPI (pip's cache helps: each env is ~7 GB with CUDA torch, one on disk at a time) and
≈ 9 minutes (pose env 323–330 s, torch env 184–211 s with a warm cache on 2 cores).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from test_envs import env_requirements, pyproject_requirements  # noqa: E402
from test_pipeline import tiny_config  # noqa: E402


def sh(cmd: list[str], **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def build_venv(env_file: Path, root: Path) -> Path:
    """A virtualenv with the env file's pip packages, Snakemake, and the post-deploy step."""
    venv = root / env_file.stem
    sh([sys.executable, "-m", "venv", str(venv)])
    reqs = [f"{n}=={v}" if v else n for n, v in env_requirements(env_file).items()]
    snakemake = f"snakemake=={pyproject_requirements()['snakemake']}"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    sh([*pip, "--upgrade", "pip", "setuptools", "wheel"])
    sh([*pip, *reqs, snakemake])
    post = env_file.with_name(env_file.stem + ".post-deploy.sh")
    if post.exists():
        env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
        sh(["bash", str(post)], env=env)
    return venv


def snakemake(python: Path, work: Path, *targets: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the Snakefile's own `import jmrn`
    sh([str(python), "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
        str(work), "--configfile", str(work / "config.yaml"), "--cores", "2", *targets],
       cwd=work, env=env)


def check(env_file: Path, root: Path) -> float:
    start = time.time()
    venv = build_venv(env_file, root)
    work = root / f"work-{env_file.stem}"
    work.mkdir()
    cfg = tiny_config(work)
    potion = "results/demo/potion.zarr"
    if env_file.stem == "pose":  # the pose network itself, as an env user would run it
        cfg["pose"].update(backend="openpifpaf", options={"openpifpaf": {
            "checkpoint": None, "device": "cpu", "long_edge": 64, "batch_size": 8}})
        (work / "config.yaml").write_text(yaml.safe_dump(cfg))
        snakemake(venv / "bin" / "python", work, potion)
    else:  # upstream with the project's environment, then this env's rules
        (work / "config.yaml").write_text(yaml.safe_dump(cfg))
        snakemake(Path(sys.executable), work, potion)
        snakemake(venv / "bin" / "python", work, "all")
    return time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="*", type=Path, default=sorted((REPO / "envs").glob("*.yaml")))
    parser.add_argument("--keep", action="store_true", help="keep the virtualenvs and runs")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="jmrn-envs-"))
    try:
        for env_file in args.envs:
            seconds = check(env_file.resolve(), root)
            print(f"{env_file.name}: fresh virtualenv + post-deploy + its rules ran in {seconds:.0f} s",
                  flush=True)
            if not args.keep:  # one env on disk at a time
                shutil.rmtree(root / env_file.stem)
    finally:
        if args.keep:
            print("kept", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
