"""Command line helpers outside the Snakemake DAG (see README):

  python -m jmrn demo-data ROOT                     write the demo dataset
  python -m jmrn check-config [--print] FILE ...    validate config files as Snakemake merges them,
                                                    list missing inputs, print the merged config
  python -m jmrn recipe FILE ...                    the training recipe those files give
  python -m jmrn status [--results DIR]             progress of a run, read from its logs
  python -m jmrn openpifpaf-state-dict CKPT SHA256 OUT   a trusted openpifpaf model -> state dict
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from jmrn.config import check_config
from jmrn.errors import UserError
from jmrn.io import read_yaml, setup_logging

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping (``io.read_yaml``: syntax errors name file:line:col)."""
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file must be a mapping of keys, not {type(data).__name__}")
    return data


def schema_problem(config: dict[str, Any]) -> str:
    """The most relevant schema violation as "key.path: message"."""
    import jsonschema

    schema = read_config_file(SCHEMA)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is None:
        return "invalid"
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{where}: {error.message}"


NO_DATASET = ("no dataset chosen: add --configfile config/demo.yaml (the demo), or "
              "config/paper.yaml config/<dataset>.yaml (a dataset file names its data)")


def validate_config(config: dict[str, Any], files: str) -> dict[str, Any]:
    """Validate a merged config against the schema (filling in its defaults) and cross-check
    it; every problem is one ``UserError`` line naming ``files`` and the key. The Snakefile and
    ``check-config`` both call this."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    if "dataset" not in config:
        raise UserError(NO_DATASET)
    try:
        validate(config, str(SCHEMA))
    except WorkflowError as exc:
        raise UserError(f"{files}: {schema_problem(config)}") from exc
    try:
        check_config(config)
    except ValueError as exc:
        raise UserError(f"{files}: {exc}") from exc
    return config


def merged_config(files: list[str]) -> dict[str, Any]:
    """config/config.yaml with each file merged on top, then validated against the schema (with
    its defaults filled in) and cross-checked: what ``snakemake --configfile FILE ...`` runs."""
    from snakemake.utils import update_config

    config = read_config_file(DEFAULT_CONFIG)
    for path in files:
        update_config(config, read_config_file(path))
    return validate_config(config, " + ".join(["config/config.yaml", *files]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jmrn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="write the demo dataset (HMDB51 layout) to ROOT")
    demo.add_argument("root")
    demo.add_argument("--classes", type=int, default=10)
    demo.add_argument("--videos-per-class", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    check = sub.add_parser("check-config", help="validate config files merged onto the defaults "
                                                "and list the input files that are missing")
    check.add_argument("configs", nargs="*", metavar="FILE")
    check.add_argument("--print", action="store_true", help="print the merged config (YAML)")
    recipe = sub.add_parser("recipe", help="print the training recipe of the full model that "
                                           "config files merged onto the defaults give")
    recipe.add_argument("configs", nargs="*", metavar="FILE")
    status = sub.add_parser("status", help="per stage done/total and each running training's "
                                           "epoch and ETA, read from the run's logs")
    status.add_argument("--results", default="results", help="the run's results folder")
    slurm = sub.add_parser("slurm", help="after Snakemake was killed: list this checkout's jobs "
                                         "left in SLURM, cancel them (--cancel), remove "
                                         "Snakemake's lock and print the rerun command")
    slurm.add_argument("--cancel", action="store_true", help="scancel the jobs listed")
    slurm.add_argument("--no-unlock", action="store_true", help="leave Snakemake's lock")
    slurm.add_argument("rerun", nargs=argparse.REMAINDER, metavar="TARGET/ARGS",
                       help="targets and --configfile of the run, echoed in the rerun command")
    convert = sub.add_parser("openpifpaf-state-dict",
                             help="load a trusted pickled openpifpaf checkpoint (its SHA-256 "
                                  "given) and save its weights as a state dict")
    convert.add_argument("checkpoint")
    convert.add_argument("sha256")
    convert.add_argument("out")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        if args.command == "demo-data":
            from jmrn.datasets import demo as demo_module

            demo_module.generate(args.root, classes=args.classes,
                                 videos_per_class=args.videos_per_class, seed=args.seed)
        elif args.command == "check-config":
            import yaml

            from jmrn.preflight import missing_inputs

            config = merged_config(args.configs)
            if args.print:
                print(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), end="")
            missing = missing_inputs(config)
            print("config ok" + (f", but {len(missing)} input(s) are missing; a run stops "
                                 "before any job until they exist:" if missing else ""))
            for line in missing:
                print(f"missing: {line}")
        elif args.command == "recipe":
            from jmrn.recipe import recipe_table

            print(recipe_table({" + ".join(args.configs) or "defaults": merged_config(args.configs)}))
        elif args.command == "status":
            from jmrn.status import print_status

            print_status(args.results)
        elif args.command == "slurm":
            from jmrn.slurm import recover

            return recover(".", cancel=args.cancel, unlock=not args.no_unlock,
                           snakemake=".venv/bin/snakemake", extra_args=args.rerun)
        elif args.command == "openpifpaf-state-dict":
            from jmrn.pose.openpifpaf_backend import save_state_dict

            save_state_dict(args.checkpoint, args.sha256, args.out)
            print(f"wrote {args.out}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
