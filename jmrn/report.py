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

from jmrn.datasets.manifest import (  # noqa: E402
    LABEL_SEPARATOR, class_names, label_targets, parse_labels, read_manifest)
from jmrn.io import atomic_path, read_video_table, value_columns  # noqa: E402
from jmrn.metrics import average_precision, top1_hits  # noqa: E402
from jmrn.store import PotionStore  # noqa: E402

log = logging.getLogger(__name__)

# Paper Table 1 for the comparison column: JHMDB-1 / HMDB-1 mean class accuracy, Charades mAP (%).
PAPER_TABLE1 = {
    "potion": {"JHMDB-1": 59.44, "HMDB-1": 42.04, "Charades mAP": 13.54},
    "potion_deep": {"JHMDB-1": 66.38, "HMDB-1": 49.25, "Charades mAP": 14.88},
    "jmrn": {"JHMDB-1": 66.70, "HMDB-1": 48.71, "Charades mAP": 15.00},
    "jmrn_nonsiamese": {"JHMDB-1": 65.98, "HMDB-1": 51.66, "Charades mAP": 14.93},
    "jmrn_paa": {"JHMDB-1": 69.81, "HMDB-1": 52.02, "Charades mAP": 15.79},
    "jmrn_paa_cl": {"JHMDB-1": 71.08, "HMDB-1": 54.05, "Charades mAP": 16.2},
}


def _read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_table(frame: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike,
                title: str) -> None:
    """Write the same table as CSV and as a Markdown file with a heading."""
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(md_path) as tmp:
        tmp.write_text(f"# {title}\n\n{frame.to_markdown(index=False)}\n", encoding="utf-8")


def mean_std(values: pd.Series) -> str:
    v = values.dropna().to_numpy(float) * 100
    if len(v) == 0:
        return "—"
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"


METRIC_TITLES = {"mean_class_accuracy": "mean class accuracy", "top1": "top-1 accuracy",
                 "top5": "top-5 accuracy", "mAP": "mAP"}


def summary_table(metrics_files: Sequence[str], dataset: str,
                  metric: str = "mean_class_accuracy") -> pd.DataFrame:
    """Per variant: the metric per split (%) and the mean ± std over splits."""
    rows = [_read_json(p) for p in metrics_files]
    long = pd.DataFrame(rows)
    if metric not in long:
        raise ValueError(f"report.metric {metric!r} is not in the metrics files (they have "
                         f"{sorted(c for c in long.columns if c in METRIC_TITLES)})")
    wide = long.pivot_table(index="variant", columns="split", values=metric,
                            aggfunc="first", sort=False, dropna=False)
    table = pd.DataFrame({"dataset": dataset, "variant": wide.index})
    for split in wide.columns:
        table[f"split{split} (%)"] = (wide[split].to_numpy(float) * 100).round(2)
    table["mean ± std (%)"] = [mean_std(wide.loc[v]) for v in wide.index]
    return table


def fusion_table(fusion_files: Sequence[str], names: Sequence[str],
                 metric: str = "mean_class_accuracy") -> pd.DataFrame:
    """Per fusion and method (each modality alone, average, learned): the metric per split and
    the mean ± std over splits; learned weights are in each fusion's weights.json."""
    rows = []
    for name, path in zip(names, fusion_files):
        result = _read_json(path)
        split = Path(path).parent.parent.parent.name  # .../split<k>/fusion/<name>/metrics.json
        for method, m in result["test"].items():
            rows.append({"fusion": name, "method": method, "split": split,
                         "acc": m.get(metric)})
    if not rows:
        return pd.DataFrame(columns=["fusion", "method"])
    long = pd.DataFrame(rows)
    wide = long.pivot_table(index=["fusion", "method"], columns="split", values="acc",
                            aggfunc="first", sort=False)
    table = wide.reset_index()[["fusion", "method"]]
    for split in wide.columns:
        table[f"{split} (%)"] = (wide[split].to_numpy(float) * 100).round(2)
    table["mean ± std (%)"] = [mean_std(wide.iloc[i]) for i in range(len(wide))]
    return table


def plot_learning_curves(history_files: Sequence[str], labels: Sequence[str], out_png: str) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for path, label in zip(history_files, labels):
        h = pd.read_csv(path)
        ax_loss.plot(h["epoch"], h["loss"], label=label)
        ax_acc.plot(h["epoch"], h["train_acc"] * 100, label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="training accuracy (%)", title="Accuracy")
    ax_acc.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out_png)


def _targets(table: pd.DataFrame, num_classes: int) -> np.ndarray:
    """N x K 0/1 matrix of true classes (one-hot, or multi-hot for multi-label tables)."""
    y = label_targets(table, num_classes)
    return y if y.ndim == 2 else np.eye(num_classes, dtype=np.float32)[y]


def test_predictions(logits_csv: str) -> tuple[list[str], np.ndarray, np.ndarray, bool]:
    """Class names, N x K true-class matrix, N x K scores of a logits.csv's test rows, and
    whether the table is multi-label."""
    table = read_video_table(logits_csv)
    test = table[table["subset"] == "test"]
    classes = value_columns(table)
    return classes, _targets(test, len(classes)), test[classes].to_numpy(float), "labels" in table


def plot_confusion(logits_csv: str, out_png: str, title: str) -> None:
    """Rows: true class (each label of a multi-label video counts), columns: top-1 prediction."""
    classes, truth, scores, _ = test_predictions(logits_csv)
    k = len(classes)
    predicted = np.eye(k)[scores.argmax(1)] if len(scores) else np.zeros((0, k))
    cm = truth.T @ predicted
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


def per_class_scores(truth: np.ndarray, scores: np.ndarray, multilabel: bool) -> np.ndarray:
    """Per class: accuracy (single-label) or average precision (multi-label), in %; NaN when
    the class has no test video."""
    if multilabel:
        return np.array([average_precision(truth[:, k], scores[:, k]) for k in range(truth.shape[1])]) * 100
    hits = top1_hits(truth, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (truth * hits[:, None]).sum(0) / truth.sum(0) * 100


def plot_per_class_accuracy(logits_files: Sequence[str], labels: Sequence[str], out_png: str,
                            title: str) -> None:
    """Grouped bars: per-class test accuracy (AP for multi-label data) of each variant."""
    fig, ax = plt.subplots(figsize=(10, 4))
    classes: list[str] = []
    multilabel = False
    for i, (path, label) in enumerate(zip(logits_files, labels)):
        classes, truth, scores, multilabel = test_predictions(path)
        width = 0.8 / max(len(labels), 1)
        ax.bar(np.arange(len(classes)) + i * width, per_class_scores(truth, scores, multilabel),
               width, label=label)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - 0.4 / max(len(labels), 1), classes, rotation=90,
                  fontsize=7)
    ax.set(ylabel=f"test {'AP' if multilabel else 'accuracy'} (%)", ylim=(0, 100), title=title)
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
                 first_split_logits: Sequence[str], fusion_metrics: Sequence[str],
                 fusion_names: Sequence[str], focus_logits: str, joint_weights: str,
                 out: dict[str, str], metric: str = "mean_class_accuracy") -> None:
    """Snakemake entry: every table and plot of the report rule."""
    manifest = read_manifest(manifest_csv)
    classes = class_names(manifest)
    summary = summary_table(metrics, dataset, metric)
    title = METRIC_TITLES[metric]
    write_table(summary, out["summary_csv"], out["summary_md"], f"{dataset}: {title}")
    ablation = summary[["variant", "mean ± std (%)"]].copy()
    for col in ("Charades mAP",) if metric == "mAP" else ("JHMDB-1", "HMDB-1"):
        ablation[f"paper {col} (%)"] = [PAPER_TABLE1.get(v, {}).get(col, "—") for v in ablation["variant"]]
    write_table(ablation, out["ablation_csv"], out["ablation_md"],
                f"{dataset}: ablation beside the paper's Table 1")
    write_table(fusion_table(fusion_metrics, fusion_names, metric), out["fusion_csv"], out["fusion_md"],
                f"{dataset}: late fusion, {title} on the test set")
    plot_learning_curves(histories, history_labels, out["learning_curves"])
    plot_confusion(focus_logits, out["confusion"], f"{dataset}: confusion (first split)")
    plot_joint_weights(joint_weights, classes, out["joint_weights"],
                       f"{dataset}: mean joint weights per class (first split)")
    plot_per_class_accuracy(first_split_logits, history_labels, out["per_class_accuracy"],
                            f"{dataset}: per-class test scores (first split)")
    plot_potion_examples(potion_path, manifest, out["potion_examples"],
                         f"{dataset}: PoTion maps, one video per class (blue → red = time)")
    log.info("report written:\n%s", summary.to_markdown(index=False))
