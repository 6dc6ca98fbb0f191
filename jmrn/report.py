"""Report stage: results tables (CSV + Markdown) and plots (PNG) from the exported outputs."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from jmrn.io import atomic_path, read_video_table, value_columns  # noqa: E402
from jmrn.store import PotionStore  # noqa: E402
from jmrn.tables import (  # noqa: E402
    LABEL_SEPARATOR, class_names, escaped_frame, html_cell, label_targets, markdown_frame,
    parse_labels, read_manifest)

log = logging.getLogger(__name__)

# The paper's figures (%) by dataset adapter and metric: per scope ("split 1", or "3 splits":
# the mean over splits 1-3) the figure of each paper row (Tables 1, 5, 6, 7, 8; the paper gives
# none for its no-re-weighting row). A figure is printed only beside our row of the same
# dataset, metric, scope and row definition (``paper_row``).
PAPER_FIGURES: dict[tuple[str, str], dict[str, dict[str, float]]] = {
    ("jhmdb", "mean_class_accuracy"): {
        "split 1": {"PoTion": 59.44, "deeper baseline": 66.38, "JMRN": 66.70, "non-Siamese": 65.98,
                    "+PAA": 69.81, "+PAA+contrastive": 71.08},
        "3 splits": {"+PAA+contrastive": 68.55}},
    ("hmdb51", "mean_class_accuracy"): {
        "split 1": {"PoTion": 42.04, "deeper baseline": 49.25, "JMRN": 48.71, "non-Siamese": 51.66,
                    "+PAA": 52.02, "+PAA+contrastive": 54.05},
        "3 splits": {"+PAA+contrastive": 54.2}},
    ("charades", "mAP"): {
        "split 1": {"PoTion": 13.54, "deeper baseline": 14.88, "JMRN": 15.00, "non-Siamese": 14.93,
                    "+PAA": 15.79, "+PAA+contrastive": 16.2}},
    ("ava", "frame_mAP"): {"split 1": {"PoTion": 13.1, "+PAA+contrastive": 14.1}},
    ("kinetics_mimetics", "top1"): {"split 1": {"+PAA+contrastive": 26.6}},
    ("kinetics_mimetics", "top5"): {"split 1": {"+PAA+contrastive": 52.7}},
    ("kinetics_mimetics", "mAP"): {"split 1": {"+PAA+contrastive": 40.0}},
}
# The poses behind the paper's figures: OpenPose in the public code's scripts (--pose_type
# openpose_coco*); the paper's AVA and Mimetics poses come from no published script.
PAPER_POSES = {"jhmdb": "OpenPose", "hmdb51": "OpenPose", "charades": "OpenPose"}
# Paper Table 5 (AVA v2.1 val, frame-mAP@0.5 %): the RGB detector alone and fused with JMRN.
PAPER_AVA_FUSION = {"SlowFast-R101-NL": 28.06, "JMRN + SlowFast-R101-NL": 28.4}


def paper_row(variant: dict) -> str | None:
    """The paper row a resolved variant (``jmrn.config.resolve_variant``) implements, if any.

    Every row flips; the ablations (deeper baseline, non-Siamese, no re-weighting) change one
    thing of the full model (PAA + contrastive) and are sized like it (``match``)."""
    model, aug = variant["model"], variant.get("augment") or {}
    if not aug.get("flip", False) or aug.get("rotation", 0):
        return None
    paa, cl = variant.get("paa", False), variant.get("contrastive", False)
    if variant["arch"] == "potion":
        if not model.get("extra_layers", 0) and not paa:
            return "PoTion"
        if model.get("extra_layers", 0) >= 3 and paa and variant.get("match"):
            return "deeper baseline"
        return None
    siamese, reweight = model.get("siamese", True), model.get("reweight", True)
    if model.get("hard_selector", False):
        return None
    if siamese and reweight:
        return {(False, False): "JMRN", (True, False): "+PAA", (True, True): "+PAA+contrastive"}.get((paa, cl))
    if paa and cl and not siamese and reweight and variant.get("match"):
        return "non-Siamese"
    if paa and cl and siamese and not reweight:
        return "no re-weighting"
    return None


def _read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


HTML_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title><style>
body {{font-family: sans-serif; margin: 1em;}} table {{border-collapse: collapse;}}
th, td {{border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right;}}
th {{background: #eee;}} td:first-child, th:first-child {{text-align: left;}}
</style></head><body><h3>{title}</h3>{table}<p>{note}</p></body></html>
"""


def write_table(frame: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike,
                title: str, markdown: pd.DataFrame | None = None, note: str = "",
                html_path: str | os.PathLike | None = None) -> None:
    """Write a table as CSV (numbers), Markdown (``markdown``, formatted, if given) and, for
    the HTML report, a page with the Markdown table rendered. Names from outside (classes,
    streams) are escaped per format (``jmrn.tables``): formula cells in the CSV, ``|`` and line
    breaks in Markdown, markup in HTML."""
    with atomic_path(csv_path) as tmp:
        escaped_frame(frame, None).to_csv(tmp, index=False)
    shown = frame if markdown is None else markdown
    with atomic_path(md_path) as tmp:
        tmp.write_text(f"# {title}\n\n{markdown_frame(shown).to_markdown(index=False)}\n{note}",
                       encoding="utf-8")
    if html_path is not None:
        page = HTML_PAGE.format(title=html_cell(title), note=html_cell(note.strip()),
                                table=shown.to_html(index=False, na_rep="—", border=0, escape=True))
        with atomic_path(html_path) as tmp:
            tmp.write_text(page, encoding="utf-8")


def mean_std(values) -> str:
    """"mean ± std" in % of fractions (sample std; the mean alone for one value)."""
    v = pd.Series(values, dtype=float).dropna().to_numpy(float) * 100
    if len(v) == 0:
        return "—"
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"


METRIC_TITLES = {"mean_class_accuracy": "mean class accuracy", "top1": "top-1 accuracy",
                 "top5": "top-5 accuracy", "mAP": "mAP", "frame_mAP": "frame-mAP@0.5"}


def aggregate_runs(long: pd.DataFrame, keys: list[str], value: str
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per ``keys`` row: per split the mean and std over seeds, and overall the mean ± std over
    every (split, seed) run with the number of runs. Returns (numeric CSV frame, Markdown frame)."""
    numeric, shown = [], []
    for key, runs in long.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        num = dict(zip(keys, key))
        txt = dict(num)
        for split, part in runs.groupby("split", sort=True):
            v = part[value].astype(float)
            num[f"split{split}_mean (%)"] = round(v.mean() * 100, 2)
            num[f"split{split}_std (%)"] = round(v.std(ddof=1) * 100, 2) if len(v) > 1 else None
            txt[f"split{split} (%)"] = f"{mean_std(v)} ({len(v)})"
        v = runs[value].astype(float)
        num.update({"mean (%)": round(v.mean() * 100, 2),
                    "std (%)": round(v.std(ddof=1) * 100, 2) if len(v) > 1 else None,
                    "runs": len(v)})
        txt.update({"mean ± std (%)": mean_std(v), "runs": len(v)})
        numeric.append(num)
        shown.append(txt)
    return pd.DataFrame(numeric), pd.DataFrame(shown)


def read_metrics(metrics_files: Sequence[str], metric: str) -> pd.DataFrame:
    """One row per run (variant, split, seed, parameters, the metric) from metrics.json files."""
    long = pd.DataFrame([_read_json(p) for p in metrics_files])
    if metric not in long:
        raise ValueError(f"report.metric {metric!r} is not in the metrics files (they have "
                         f"{sorted(c for c in long.columns if c in METRIC_TITLES)})")
    return long


def summary_table(long: pd.DataFrame, dataset: str,
                  metric: str = "mean_class_accuracy") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per variant: the metric per split (mean ± std over seeds) and over all runs, with the
    number of runs; (CSV frame, Markdown frame). ``long``: ``read_metrics``' rows."""
    numeric, shown = aggregate_runs(long, ["variant"], metric)
    numeric.insert(0, "dataset", dataset)
    shown.insert(0, "dataset", dataset)
    return numeric, shown


def ablation_table(long: pd.DataFrame, variants: dict[str, dict], metric: str,
                   adapter: str = "", poses: str = "") -> pd.DataFrame:
    """Per variant: its paper row (by definition), our poses, parameters and mean ± std over
    every run. Where the paper has figures for this dataset (``adapter``) and metric, our
    split-1 runs stand beside the paper's split-1 figure, and our mean over splits 1-3 beside
    the paper's 3-split mean; each column header names the paper's pose source."""
    figures = PAPER_FIGURES.get((adapter, metric), {})
    splits = set(long["split"].astype(int))
    paper_poses = PAPER_POSES.get(adapter, "the paper's estimated poses")
    rows = []
    for name, runs in long.groupby("variant", sort=False):
        row_name = paper_row(variants[name]) if name in variants else None
        params = runs["n_parameters"].iloc[0] if "n_parameters" in runs else None
        row = {"variant": name, "paper row": row_name or "— (no matching definition)",
               "poses": poses or "—",
               "parameters": int(params) if params is not None and not pd.isna(params) else "—"}
        if "split 1" in figures and 1 in splits:
            first = runs[runs["split"].astype(int) == 1][metric]
            row["ours, split 1 (%)"] = f"{mean_std(first)} ({len(first)})"
            row[f"paper, split 1 (%), {paper_poses}"] = figures["split 1"].get(row_name, "—")
        row.update({"ours, all runs (%)": mean_std(runs[metric]), "runs": len(runs)})
        if "3 splits" in figures and {1, 2, 3} <= splits:
            row[f"paper, mean of 3 splits (%), {paper_poses}"] = figures["3 splits"].get(row_name, "—")
        rows.append(row)
    return pd.DataFrame(rows)


def fusion_table(fusion_files: Sequence[str],
                 metric: str = "mean_class_accuracy") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per fusion and method (each modality alone, score average, learned): the metric per
    split (mean ± std over seeds), over all runs, and the logits the weights were fitted on."""
    rows = []
    for path in fusion_files:
        result = _read_json(path)
        fit = result.get("fit", {})
        fitted = f"{fit.get('subset', '?')} (n = {fit.get('n', '?')})"
        for method in result.get("methods", list(result["test"])):  # modalities, average, learned
            m = result["test"][method]
            rows.append({"fusion": result["fusion"], "method": method, "fitted on": fitted,
                         "split": result["split"], "seed": result["seed"], "value": m.get(metric)})
    if not rows:
        empty = pd.DataFrame(columns=["fusion", "method", "fitted on"])
        return empty, empty
    long = pd.DataFrame(rows)
    long["fitted on"] = long.groupby(["fusion"])["fitted on"].transform(
        lambda v: "; ".join(sorted(set(v))))
    return aggregate_runs(long, ["fusion", "method", "fitted on"], "value")


def plot_learning_curves(history_files: Sequence[str], labels: Sequence[str],
                         splits: Sequence[int], out_png: str) -> None:
    """One row per split: classification loss and top-1 accuracy per epoch (training solid,
    validation dashed with a dot per validation, every ``train.eval_every`` epochs), and the
    learning rate, whose drops are decided by the validation loss only."""
    rows = sorted(set(splits))
    fig, axes = plt.subplots(len(rows), 3, figsize=(14, 3.6 * len(rows)), squeeze=False)
    for path, label, split in zip(history_files, labels, splits):
        ax_loss, ax_acc, ax_lr = axes[rows.index(split)]
        h = pd.read_csv(path)
        colour = f"C{sorted(set(labels)).index(label) % 10}"
        ax_loss.plot(h["epoch"], h["cls_loss"], color=colour, label=f"{label} train")
        ax_acc.plot(h["epoch"], h["train_acc"] * 100, color=colour, label=f"{label} train")
        if "val_loss" in h:
            v = h.dropna(subset=["val_loss"])  # the validated epochs
            ax_loss.plot(v["epoch"], v["val_loss"], color=colour, ls="--", marker=".",
                         label=f"{label} val")
            ax_acc.plot(v["epoch"], v["val_acc"] * 100, color=colour, ls="--", marker=".",
                        label=f"{label} val")
        ax_lr.plot(h["epoch"], h["lr"], color=colour, label=label)
        if "selected" in h and h["selected"].any():
            kept = h[h["selected"] == 1]
            ax_acc.scatter(kept["epoch"], kept["train_acc"] * 100, color=colour, marker="o", zorder=3)
    for split, (ax_loss, ax_acc, ax_lr) in zip(rows, axes):
        ax_loss.set(xlabel="epoch", ylabel="classification loss", yscale="log",
                    title=f"split {split}: loss")
        ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy (%)",
                   title=f"split {split}: accuracy (dot: kept epoch)")
        ax_lr.set(xlabel="epoch", ylabel="learning rate", yscale="log",
                  title=f"split {split}: learning rate")
        ax_acc.legend(fontsize=6)
    fig.tight_layout()
    _save(fig, out_png)


def summed_confusion(confusion_files: Sequence[str]) -> pd.DataFrame:
    """The confusion counts (true x predicted) of several runs added up."""
    tables = [pd.read_csv(p, index_col=0) for p in confusion_files]
    return sum(tables[1:], tables[0])


def plot_confusion(counts: pd.DataFrame, out_png: str, title: str) -> None:
    """Rows: true class (each label of a multi-label video counts), columns: top-1 prediction;
    each row as a share of its class's test videos."""
    classes = list(counts.columns)
    k = len(classes)
    cm = counts.to_numpy(float)
    cm /= np.maximum(cm.sum(1, keepdims=True), 1)
    margin = 0.07 * max(map(len, classes), default=0)  # room for the tick labels (inches)
    fig, ax = plt.subplots(figsize=(2.5 + 0.45 * k + margin, 1.5 + 0.4 * k + margin))
    im = ax.imshow(cm * 100, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(k), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set(xlabel="predicted (top-1)", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, label="% of true class")
    fig.tight_layout()
    _save(fig, out_png)


def _targets(table: pd.DataFrame, num_classes: int) -> np.ndarray:
    """N x K 0/1 matrix of true classes (one-hot, or multi-hot for multi-label tables)."""
    y = label_targets(table, num_classes)
    return y if y.ndim == 2 else np.eye(num_classes, dtype=np.float32)[y]


def plot_joint_weights(joint_weight_csv: str, classes: Sequence[str], out_png: str, title: str) -> None:
    """Per-class mean selector weight of each joint (paper Fig. 2)."""
    table = read_video_table(joint_weight_csv)
    fig, ax = plt.subplots(figsize=(9, 1 + 0.35 * len(classes)))
    if len(table):
        joints = value_columns(table)
        truth = _targets(table, len(classes))  # N x K
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (truth.T @ table[joints].to_numpy(float)) / truth.sum(0)[:, None]
        im = ax.imshow(mean, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(joints)), joints, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        fig.colorbar(im, ax=ax, label="mean joint weight")
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, out_png)


def per_class_table(long: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per class and variant, the per-class test score (accuracy, or AP for multi-label data)
    over every split and seed: (CSV rows class, variant, mean, std, runs; Markdown: a row per
    class, a column per variant with mean ± std and the number of runs)."""
    rows = []
    for _, run in long.iterrows():
        per_class = run.get("per_class")
        if not isinstance(per_class, dict):  # a metrics.json written before per-class scores
            continue
        for name, value in per_class.items():
            rows.append({"class": name, "variant": run["variant"], "value": value})
    if not rows:
        empty = pd.DataFrame(columns=["class"])
        return empty, empty
    scores = pd.DataFrame(rows).astype({"value": float})
    numeric = scores.groupby(["class", "variant"], sort=False)["value"].agg(
        **{"mean (%)": lambda v: round(v.mean() * 100, 2),
           "std (%)": lambda v: round(v.std(ddof=1) * 100, 2) if v.notna().sum() > 1 else None,
           "runs": lambda v: int(v.notna().sum())}).reset_index()
    shown = scores.groupby(["class", "variant"], sort=False)["value"].agg(
        lambda v: f"{mean_std(v)} ({int(v.notna().sum())})").unstack("variant")
    shown = shown.reindex(index=list(dict.fromkeys(scores["class"])),
                          columns=list(dict.fromkeys(scores["variant"]))).reset_index()
    return numeric, shown


def plot_per_class(numeric: pd.DataFrame, out_png: str, title: str, metric: str) -> None:
    """Grouped bars: each class's test score per variant, mean over splits and seeds, with
    the standard deviation as an error bar."""
    classes = list(dict.fromkeys(numeric["class"])) if len(numeric) else []
    variants = list(dict.fromkeys(numeric["variant"])) if len(numeric) else []
    fig, ax = plt.subplots(figsize=(max(10, 0.35 * len(classes) * max(len(variants), 1)), 4))
    width = 0.8 / max(len(variants), 1)
    for i, variant in enumerate(variants):
        part = numeric[numeric["variant"] == variant].set_index("class").reindex(classes)
        ax.bar(np.arange(len(classes)) + i * width, part["mean (%)"], width,
               yerr=part["std (%)"].astype(float).fillna(0), capsize=2, label=variant)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes, rotation=90, fontsize=7)
    ax.set(ylabel=f"test {metric} (%)", ylim=(0, 105), title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out_png)


def colorize_potion(u: np.ndarray) -> np.ndarray:
    """RGB picture (H x W x 3) of a PoTion map (J x C x H x W): all joints, time as colour
    (blue = start, green = middle, red = end for C = 3), brightness = heatmap mass."""
    c = u.shape[1]
    colours = plt.get_cmap("turbo")(np.linspace(0.1, 0.9, c))[:, :3]  # C x 3
    img = np.einsum("jchw,ck->hwk", u.astype(np.float64), colours)
    return np.clip(img / max(img.max(), 1e-9), 0, 1)


def plot_potion_examples(potion_path: str, manifest: pd.DataFrame, out_png: str, title: str) -> None:
    """One PoTion map per class (the first usable video of each), time coloured; only the C
    temporal channels are drawn, not the optional extra channels."""
    store = PotionStore(potion_path)
    channels = int(store.attrs.get("channels", 3))
    usable = manifest[manifest["video_id"].isin(store.index)].sort_values("video_id")
    if "labels" in usable:  # multi-label: a video stands for its first class
        usable = usable[usable["labels"] != ""].assign(
            label=lambda t: t["labels"].map(lambda f: parse_labels(f)[0]),
            label_name=lambda t: t["label_names"].str.split(LABEL_SEPARATOR).str[0])
    examples = usable.groupby("label", sort=True).head(1).sort_values("label")
    n = len(examples)
    cols = min(5, max(n, 1))
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, row) in zip(axes.ravel(), examples.iterrows()):
        ax.imshow(colorize_potion(store.get(row["video_id"])[:, :channels]))
        ax.set_title(f"{row['label_name']}\n{row['video_id'][:28]}", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out_png)


def _save(fig: plt.Figure, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def build_report(dataset: str, manifest_csv: str, potion_path: str, metrics: Sequence[str],
                 histories: Sequence[str], history_labels: Sequence[str],
                 history_splits: Sequence[int], confusions: Sequence[str],
                 fusion_metrics: Sequence[str], joint_weights: str, out: dict[str, str],
                 variants: dict[str, dict], metric: str = "mean_class_accuracy",
                 adapter: str = "", poses: str = "", focus: str = "") -> None:
    """Snakemake entry: every table and plot of the report rule. ``adapter`` (the dataset's
    reader) decides which paper figures are comparable; ``poses`` names our pose source;
    ``confusions`` are the focus variant's runs, ``histories`` each split's first seed."""
    manifest = read_manifest(manifest_csv)
    classes = class_names(manifest)
    title = METRIC_TITLES[metric]
    runs = read_metrics(metrics, metric)
    numeric, shown = summary_table(runs, dataset, metric)
    runs_note = ("\nSplit cells: mean ± std over that split's seeds, with the number of runs in "
                 "parentheses; last columns: over every split and seed.\n")
    write_table(numeric, out["summary_csv"], out["summary_md"], f"{dataset}: {title}", shown,
                runs_note, out.get("summary_html"))
    ablation = ablation_table(runs, variants, metric, adapter, poses)
    paper_note = ("\nPaper figures stand only beside our row of the same dataset, split, metric "
                  "and row definition; the column header names the poses they come from, the "
                  "`poses` column ours.\n" if any(c.startswith("paper,") for c in ablation)
                  else "\nThe paper reports no figures for this dataset.\n")
    write_table(ablation, out["ablation_csv"], out["ablation_md"],
                f"{dataset}: the paper's ablation rows (Tables 1, 7, 8), {title}", note=paper_note,
                html_path=out.get("ablation_html"))
    fusion_numeric, fusion_shown = fusion_table(fusion_metrics, metric)
    fusion_note = runs_note
    if adapter == "ava" and metric == "frame_mAP":
        fusion_note += "\nPaper Table 5 (AVA v2.1 val): " + ", ".join(
            f"{k} {v}" for k, v in PAPER_AVA_FUSION.items()) + ".\n"
    write_table(fusion_numeric, out["fusion_csv"], out["fusion_md"],
                f"{dataset}: late fusion, {title} on the test set", fusion_shown, fusion_note,
                out.get("fusion_html"))
    kinds = runs.get("per_class_metric", pd.Series(dtype=object)).dropna()  # as export wrote it
    class_metric = kinds.iloc[0] if len(kinds) else "score"
    per_class_numeric, per_class_shown = per_class_table(runs)
    write_table(per_class_numeric, out["per_class_csv"], out["per_class_md"],
                f"{dataset}: per-class test {class_metric}", per_class_shown,
                "\nCells: mean ± std over every split and seed, with the number of runs in "
                "parentheses (a class without test videos in a split is left out of it).\n",
                out.get("per_class_html"))
    plot_learning_curves(histories, history_labels, history_splits, out["learning_curves"])
    plot_confusion(summed_confusion(confusions), out["confusion"],
                   f"{dataset}: {focus} confusion, every split and seed")
    plot_joint_weights(joint_weights, classes, out["joint_weights"],
                       f"{dataset}: mean joint weights per class (first split and seed)")
    plot_per_class(per_class_numeric, out["per_class_accuracy"],
                   f"{dataset}: per-class test {class_metric}, mean ± std over splits and seeds",
                   class_metric)
    plot_potion_examples(potion_path, manifest, out["potion_examples"],
                         f"{dataset}: PoTion maps, one video per class (blue → red = time)")
    log.info("report written:\n%s", shown.to_markdown(index=False))


def finished_message(dataset: str, configfiles: Sequence[str]) -> str:
    """What a finished run prints last: where its tables are and how to make the HTML report."""
    files = " ".join(str(f) for f in configfiles)
    return (f"Tables: results/tables/{dataset}_summary.md (also _ablation, _fusion, _per_class; "
            f"CSV beside each); plots: results/plots/{dataset}_*.png\n"
            f"HTML report: .venv/bin/snakemake --report results/{dataset}_report.html"
            + (f" --configfile {files}" if files else ""))
