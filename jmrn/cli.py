"""Command line helpers outside the Snakemake DAG (see README):

  python -m jmrn demo-data ROOT                     write the demo dataset
  python -m jmrn check-config [--print] FILE ...    validate config files as Snakemake merges them,
                                                    list missing inputs, print the merged config
  python -m jmrn recipe FILE ...                    the training recipe those files give
  python -m jmrn status [--results DIR]             progress of a run, read from its logs
  python -m jmrn slurm [--cancel] [TARGET/ARGS]     after Snakemake was killed: its SLURM jobs
                                                    left, the lock removed, the rerun command
  python -m jmrn model-card RUN_DIR                 what a trained model bundle holds
  python -m jmrn predict RUN_DIR VIDEO_OR_FOLDER ...   actions in new videos, with a trained model
  python -m jmrn evaluate RUN_DIR --configfile FILE ...   score a trained model on a dataset's test split
  python -m jmrn openpifpaf-state-dict CKPT SHA256 OUT   a trusted openpifpaf model -> state dict
  python -m jmrn keypoints to-pickle FORMAT ROOT --out PKL   keypoint files -> 2D skeleton pickle
  python -m jmrn keypoints export RESULTS_DIR --out PKL  pose stage heatmaps -> 2D skeleton pickle
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
    hint = error.schema.get("description") if error.validator == "pattern" else None
    return f"{where}: {error.message}" + (f" ({hint})" if hint else "")


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


def backend_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` options, each value read as YAML (numbers, null, true stay typed)."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UserError(f"--option {pair!r}: not a value ({exc})") from exc
    return options


def add_command(sub: argparse._SubParsersAction, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary shows both in its parent's --help and in its own."""
    return sub.add_parser(name, help=summary, description=summary)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jmrn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return add_command(sub, name, summary)

    demo = command("demo-data", "write the demo dataset (HMDB51 layout) to ROOT")
    demo.add_argument("root")
    demo.add_argument("--classes", type=int, default=10)
    demo.add_argument("--videos-per-class", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    check = command("check-config", "validate config files merged onto the defaults and list "
                                    "the input files that are missing")
    check.add_argument("configs", nargs="*", metavar="FILE")
    check.add_argument("--print", action="store_true", help="print the merged config (YAML)")
    recipe = command("recipe", "print the training recipe of the full model that config files "
                               "merged onto the defaults give")
    recipe.add_argument("configs", nargs="*", metavar="FILE")
    status = command("status", "per stage done/total and each running training's epoch and "
                               "ETA, read from the run's logs")
    status.add_argument("--results", default="results", help="the run's results folder")
    slurm = command("slurm", "after Snakemake was killed: list this checkout's jobs left in "
                             "SLURM, cancel them (--cancel), remove Snakemake's lock and print "
                             "the rerun command")
    slurm.add_argument("--cancel", action="store_true", help="scancel the jobs listed")
    slurm.add_argument("--no-unlock", action="store_true", help="leave Snakemake's lock")
    slurm.add_argument("rerun", nargs=argparse.REMAINDER, metavar="TARGET/ARGS",
                       help="targets and --configfile of the run, echoed in the rerun command")
    convert = command("openpifpaf-state-dict", "load a trusted pickled openpifpaf checkpoint "
                                               "(its SHA-256 given) and save its weights as a "
                                               "state dict")
    convert.add_argument("checkpoint")
    convert.add_argument("sha256")
    convert.add_argument("out")
    card = command("model-card", "print what a run's model bundle (model.pt and "
                                 "model_card.json) holds")
    card.add_argument("bundle", metavar="RUN_DIR", help="a run folder (model.pt + model_card.json)")
    card.add_argument("--json", action="store_true", help="the card as JSON")
    guess = command("predict", "recognise the actions in videos with a trained model")
    guess.add_argument("bundle", metavar="RUN_DIR", help="a run folder (model.pt + model_card.json)")
    guess.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER")
    guess.add_argument("--backend", help="pose backend that reads the videos (default: the model's)")
    guess.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="a pose backend option, e.g. checkpoint=models/shufflenetv2k16.pt")
    guess.add_argument("--top", type=int, default=5, help="classes listed per video (5)")
    guess.add_argument("--out", default="predictions", help="folder for the CSVs and contact sheets")
    guess.add_argument("--no-sheets", action="store_true", help="skip the contact sheets")
    score = command("evaluate", "score a trained model on a configured dataset's test split "
                                "(no training)")
    score.add_argument("bundle", metavar="RUN_DIR", help="a run folder (model.pt + model_card.json)")
    score.add_argument("--configfile", nargs="+", required=True, metavar="FILE",
                       help="the config files that name the dataset (as for snakemake); give "
                            "RUN_DIR before this option")
    score.add_argument("--split", type=int, help="split to score (default: the model's; another "
                                                 "split's test videos the model trained on are "
                                                 "counted in a warning)")
    score.add_argument("--results", default="results",
                       help="the results folder holding that dataset's manifest.csv and "
                            "potion.zarr (default: results)")
    score.add_argument("--out", help="output folder (default: evaluations/<dataset>/split<k>/"
                                     "<variant>/seed<seed>)")
    score.add_argument("--allow-other-poses", action="store_true",
                       help="score maps made by another pose backend than the model's")
    from jmrn.keypoints_io.command import add_parser as add_keypoints_parser

    add_keypoints_parser(sub)
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
        elif args.command == "model-card":
            import json

            from jmrn.model_card import describe, read_card

            found = read_card(args.bundle)
            print(json.dumps(found, indent=2) if args.json else describe(found))
        elif args.command == "predict":
            from jmrn.predict import load_bundle, predict_videos, print_predictions

            if args.top < 1:
                raise UserError(f"--top {args.top}: list at least one class")
            table = predict_videos(load_bundle(args.bundle), args.inputs, args.out, args.backend,
                                   backend_options(args.option), args.top, not args.no_sheets)
            print(print_predictions(table, args.top))
            read = int((table["status"] == "ok").sum())
            print(f"wrote {args.out}/predictions.csv, {args.out}/probabilities.csv"
                  + ("" if args.no_sheets or not read else f" and contact sheets in {args.out}/sheets/"))
            if not read:
                raise UserError(f"none of the {len(table)} videos could be read (see the status column)")
        elif args.command == "evaluate":
            from jmrn.evaluate import EVALUATION_FILES, evaluate_bundle
            from jmrn.model_card import read_card

            found = read_card(args.bundle)
            config = merged_config(args.configfile)
            split = args.split if args.split is not None else found["split"]
            out = args.out or (f"evaluations/{config['dataset']['name']}/split{split}/"
                               f"{found['variant']}/seed{found['seed']}")
            metrics = evaluate_bundle(args.bundle, config, out, split, args.results,
                                      args.allow_other_poses)
            shown = {k: metrics[k] for k in ("mean_class_accuracy", "top1", "top5", "mAP", "frame_mAP")
                     if metrics.get(k) is not None}
            print(f"{found['variant']} on {config['dataset']['name']} split {split}, "
                  f"{metrics['n_test']} test videos: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
            print(f"wrote {', '.join(sorted(EVALUATION_FILES.values()))} in {out}/")
        elif args.command == "keypoints":
            from jmrn.keypoints_io.command import run as run_keypoints

            run_keypoints(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
