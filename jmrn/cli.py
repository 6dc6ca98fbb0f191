"""Command line: ``python -m jmrn demo-data ROOT`` and ``python -m jmrn check-config FILE``.

The pipeline itself runs through Snakemake (see README); these commands help outside it.
"""
from __future__ import annotations

import argparse
import sys

from jmrn.config import check_config
from jmrn.io import read_yaml, setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jmrn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="write the demo dataset (HMDB51 layout) to ROOT")
    demo.add_argument("root")
    demo.add_argument("--classes", type=int, default=10)
    demo.add_argument("--videos-per-class", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    check = sub.add_parser("check-config", help="cross-check a config file's variant names")
    check.add_argument("config")
    args = parser.parse_args(argv)
    setup_logging()
    if args.command == "demo-data":
        from jmrn.datasets import demo as demo_module

        demo_module.generate(args.root, classes=args.classes,
                             videos_per_class=args.videos_per_class, seed=args.seed)
    elif args.command == "check-config":
        try:
            check_config(read_yaml(args.config))
        except ValueError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            return 1
        print("config ok")
    return 0
