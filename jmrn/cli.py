"""Command line helpers outside the Snakemake DAG (see README):

  python -m jmrn demo-data ROOT                     write the demo dataset
  python -m jmrn check-config [FILE ...]            validate config files as Snakemake merges them
  python -m jmrn recipe [FILE ...]                  the training recipe those files give
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


def merged_config(files: list[str]) -> dict[str, Any]:
    """config/config.yaml with each file merged on top, then validated against the schema (with
    its defaults filled in) and cross-checked: what ``snakemake --configfile FILE ...`` runs."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import update_config, validate

    config = read_config_file(DEFAULT_CONFIG)
    for path in files:
        update_config(config, read_config_file(path))
    try:
        validate(config, str(SCHEMA))
    except WorkflowError as exc:
        raise UserError(f"{' + '.join(files) or DEFAULT_CONFIG.name}: {schema_problem(config)}") from exc
    try:
        check_config(config)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jmrn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="write the demo dataset (HMDB51 layout) to ROOT")
    demo.add_argument("root")
    demo.add_argument("--classes", type=int, default=10)
    demo.add_argument("--videos-per-class", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    check = sub.add_parser("check-config", help="validate config files merged onto the defaults")
    check.add_argument("configs", nargs="*", metavar="FILE")
    recipe = sub.add_parser("recipe", help="print the training recipe of the full model that "
                                           "config files merged onto the defaults give")
    recipe.add_argument("configs", nargs="*", metavar="FILE")
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
            merged_config(args.configs)
            print("config ok")
        elif args.command == "recipe":
            from jmrn.recipe import recipe_table

            print(recipe_table({" + ".join(args.configs) or "defaults": merged_config(args.configs)}))
        elif args.command == "openpifpaf-state-dict":
            from jmrn.pose.openpifpaf_backend import save_state_dict

            save_state_dict(args.checkpoint, args.sha256, args.out)
            print(f"wrote {args.out}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
