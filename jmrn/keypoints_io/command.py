"""``python -m jmrn keypoints to-pickle | export``: the command line of the converters."""
from __future__ import annotations

import argparse

from jmrn.errors import UserError
from jmrn.keypoints_io.pickle_io import OUT_LAYOUTS, Conversion, write_pickle

SHOWN = 20  # skipped files and notes printed one per line; the rest counted


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``keypoints`` with its two subcommands on the main parser's ``sub``."""
    from jmrn.cli import add_command  # the command line's own helper; cli imports this module lazily

    top = add_command(sub, "keypoints", "convert keypoint files to the pyskl/mmaction2 2D pickle, "
                                        "or export one from a finished pose stage")
    kinds = top.add_subparsers(dest="keypoints_command", required=True)
    to = add_command(kinds, "to-pickle", "files | utd-mhad | ntu keypoints -> skeleton pickle")
    to.add_argument("format", choices=("files", "utd-mhad", "ntu"),
                    help="files: per-video .npy/.json/.csv; utd-mhad: a*_s*_t*_skeleton.mat; "
                         "ntu: NTU RGB+D .skeleton")
    to.add_argument("root", help="folder searched recursively for the files")
    to.add_argument("--out", required=True, help="the pickle to write (its class names go to "
                                                  "<out>.labels.txt)")
    to.add_argument("--out-layout", default="coco17", choices=OUT_LAYOUTS,
                    help="joint layout written (pose.options.keypoints.layout; default coco17)")
    to.add_argument("--layout", default="coco17",
                    help="files: the joint layout the files are in (coco17, openpose18, jmrn18, "
                         "jhmdb15, body25, halpe26, mediapipe33)")
    to.add_argument("--labels", help="files: CSV video,label[,split] (default: class = folder)")
    to.add_argument("--img-shape", nargs=2, type=int, metavar=("HEIGHT", "WIDTH"),
                    help="files: the videos' frame size (default: a JSON file's img_shape, else "
                         "the smallest frame holding every joint)")
    to.add_argument("--normalized", action="store_true",
                    help="files: coordinates are fractions of --img-shape")
    to.add_argument("--test-fraction", type=float, default=0.3,
                    help="files without a split column: share of each class held out as test")
    to.add_argument("--max-people", type=int, default=2, help="ntu: bodies kept per recording")
    export = add_command(kinds, "export", "skeleton pickle from a finished pose stage's heatmaps")
    export.add_argument("sources", nargs="+", metavar="RESULTS_DIR_OR_SHARD",
                        help="results/<dataset> (manifest.csv and heatmaps/) or heatmap shards")
    export.add_argument("--out", required=True, help="the pickle to write")
    export.add_argument("--manifest", help="the manifest of the shards (default: beside them)")
    export.add_argument("--out-layout", default="coco17", choices=OUT_LAYOUTS,
                        help="joint layout written (default coco17)")
    export.add_argument("--no-refine", action="store_true",
                        help="whole heatmap pixels (no sub-pixel refinement of the peaks)")


def convert(args: argparse.Namespace) -> Conversion:
    """Run the converter ``args`` name."""
    from jmrn.pose.keypoints import LAYOUTS

    out_names = LAYOUTS[args.out_layout]
    if args.keypoints_command == "export":
        from jmrn.keypoints_io.export import export

        return export(args.sources, out_names, args.manifest, refine=not args.no_refine)
    if args.format == "utd-mhad":
        from jmrn.keypoints_io import utd_mhad

        return utd_mhad.convert(args.root, out_names)
    if args.format == "ntu":
        from jmrn.keypoints_io import ntu

        return ntu.convert(args.root, out_names, args.max_people)
    from jmrn.keypoints_io import plain
    from jmrn.keypoints_io.pickle_io import input_layouts

    layouts = input_layouts()
    if args.layout not in layouts:
        raise UserError(f"unknown --layout {args.layout!r}; known: {', '.join(layouts)}")
    if not 0 < args.test_fraction < 1:
        raise UserError(f"--test-fraction must be between 0 and 1, not {args.test_fraction}")
    if args.img_shape and min(args.img_shape) < 1:
        raise UserError(f"--img-shape must be positive, not {args.img_shape}")
    return plain.convert(args.root, layouts[args.layout], out_names, args.labels,
                         tuple(args.img_shape) if args.img_shape else None, args.normalized,
                         args.test_fraction)


def run(args: argparse.Namespace) -> None:
    """Convert, write the pickle and its labels, print what was written and what was not."""
    result = convert(args)
    labels = write_pickle(args.out, result)
    frames = sum(a["total_frames"] for a in result.annotations)
    shapes = sorted({a["img_shape"] for a in result.annotations})
    people = max(a["keypoint"].shape[0] for a in result.annotations)
    print(f"wrote {args.out}: {len(result.annotations)} videos, {frames} frames, "
          f"{len(result.classes)} classes, layout {args.out_layout}, up to {people} "
          f"person(s), img_shape {', '.join(f'{h}x{w}' for h, w in shapes[:3])}"
          f"{' ...' if len(shapes) > 3 else ''}")
    print("splits: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(result.split.items())))
    print(f"class names: {labels}")
    for what, entries in (("skipped", result.skipped), ("note", result.notes)):
        for source, reason in entries[:SHOWN]:
            print(f"{what}: {source}: {reason}")
        if len(entries) > SHOWN:
            print(f"{what}: ... and {len(entries) - SHOWN} more")
