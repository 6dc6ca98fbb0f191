"""The validation split, the contrastive ramp and scheduler, the paper's rows and recipes, and
proof that the test set influences nothing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from jmrn.config import resolve_variant
from jmrn.models import count_parameters
from jmrn.report import paper_row
from jmrn.tables import split_subset, validation_ids
from jmrn.train import build_variant_model, contrastive_weight_at, fit, make_train_config

REPO = Path(__file__).resolve().parents[1]


def training_rows(n_classes=5, groups_per_class=6, clips=3):
    """HMDB51-like: clips cut from source videos, each source within one class."""
    rows = []
    for c in range(n_classes):
        for g in range(groups_per_class):
            for k in range(clips):
                rows.append({"video_id": f"src{c}_{g}_{k}", "group": f"src{c}_{g}", "label": c})
    return pd.DataFrame(rows)


def test_validation_is_stratified_grouped_and_deterministic():
    rows = training_rows()
    val = validation_ids(rows, 0.1, "split1")
    assert val == validation_ids(rows.sample(frac=1, random_state=3), 0.1, "split1")
    held = rows[rows["video_id"].isin(val)]
    assert sorted(held["label"].unique()) == list(range(5))  # every class is validated
    assert (held.groupby("label").size() == 3).all()  # one source video (3 clips) per class
    trained = rows[~rows["video_id"].isin(val)]
    assert not set(held["group"]) & set(trained["group"])  # no group straddles
    assert validation_ids(rows, 0.1, "split2") != val  # each split draws its own
    assert validation_ids(rows, 0.0, "split1") == set()


def test_validation_holds_out_whole_subjects_when_groups_span_classes():
    # UTD-MHAD-like: 4 subjects perform every one of 6 actions 4 times
    rows = pd.DataFrame([{"video_id": f"a{c}_s{s}_t{t}", "group": f"s{s}", "label": c}
                         for c in range(6) for s in range(4) for t in range(4)])
    val = validation_ids(rows, 0.1, "split1")
    subjects = {v.split("_")[1] for v in val}
    assert len(subjects) == 1 and len(val) == 24  # one whole subject: every action, 4 trials


def test_validation_never_takes_a_class_whole():
    rows = pd.DataFrame({"video_id": ["a", "b", "c"], "group": ["g1", "g1", "g2"], "label": [0, 0, 1]})
    assert validation_ids(rows, 0.5, "split1") == set()  # each class has one group only


def test_multilabel_validation_covers_label_sets():
    rows = pd.DataFrame({"video_id": [f"v{i}" for i in range(40)],
                         "labels": ["0;1", "1", "", "2;0"] * 10})
    val = validation_ids(rows, 0.2, "split1")
    assert 4 <= len(val) < 20


def test_split_subsets_are_disjoint_and_test_is_untouched():
    manifest = training_rows().assign(split1="train", status="ok")
    test = pd.DataFrame({"video_id": ["t0", "t1"], "group": ["x", "y"], "label": [0, 1],
                         "split1": "test", "status": "ok"})
    manifest = pd.concat([manifest, test], ignore_index=True)
    parts = {s: set(split_subset(manifest, 1, s, 0.1)["video_id"]) for s in ("train", "val", "test")}
    assert parts["test"] == {"t0", "t1"}
    assert not parts["train"] & parts["val"] and not (parts["train"] | parts["val"]) & parts["test"]
    assert len(parts["train"]) + len(parts["val"]) == 90


def test_contrastive_weight_ramps_linearly():
    cfg = make_train_config({"contrastive_weight": 0.05, "contrastive_ramp": {"start": 50, "length": 50}},
                            {"contrastive": True}, seed=0)
    lam = [contrastive_weight_at(cfg, e) for e in range(100)]
    assert lam[:50] == [0.0] * 50
    assert lam[50] == pytest.approx(0.001) and lam[74] == pytest.approx(0.025)
    assert lam[99] == pytest.approx(0.05) and np.all(np.diff(lam[50:]) > 0)
    assert contrastive_weight_at(make_train_config({}, {"contrastive": False}, 0), 80) == 0.0
    flat = make_train_config({"contrastive_weight": 0.5, "contrastive_ramp": {"start": 3, "length": 0}},
                             {"contrastive": True}, 0)
    assert [contrastive_weight_at(flat, e) for e in (2, 3, 9)] == [0.0, 0.5, 0.5]


def toy(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.rand(n, 18, 3, 12, 16, generator=g) * 0.1
    x[torch.arange(n), y * 5, :, 4:8, 4:8] += 1.0
    return x, y


@pytest.mark.parametrize("with_val", [True, False])
def test_scheduler_watches_the_classification_loss_only(tmp_path, monkeypatch, with_val):
    seen = []
    step = torch.optim.lr_scheduler.ReduceLROnPlateau.step
    monkeypatch.setattr(torch.optim.lr_scheduler.ReduceLROnPlateau, "step",
                        lambda self, metric: (seen.append(metric), step(self, metric))[1])
    x, y = toy(18, 0)
    val = toy(9, 1) if with_val else None
    train = {"epochs": 4, "batch_size": 6, "lr": 1e-3, "patience": 0, "device": "cpu", "eval_every": 1,
             "contrastive_weight": 100.0, "contrastive_ramp": {"start": 2, "length": 1}}
    variant = {"arch": "jmrn", "augment": {"global_jitter": 1, "group_jitter": 1, "flip": True,
                                           "rotation": 0}, "contrastive": True}
    torch.manual_seed(0)
    model = build_variant_model({**variant, "model": {"width": 0.125}}, (18, 3, 12, 16), 3)
    history = fit(model, x, y, make_train_config(train, variant, 0), tmp_path / "c.pt", val=val)
    key = "val_loss" if with_val else "cls_loss"
    assert seen == [h[key] for h in history[:-1]]  # none after the last epoch
    assert history[2]["contrastive_weight"] == 100.0 and history[2]["loss"] > 10 * history[2]["cls_loss"]


def test_lr_schedule_steps_once_per_validation_as_the_public_loop(tmp_path, monkeypatch):
    """The public trainer (trainers.py, --save_every 5) validates before epochs 5, 10, ...
    (0-based: after 5, 10, ... epochs of training), steps ReduceLROnPlateau(patience) on each
    validation loss, and validates once more after the last epoch without stepping."""
    import jmrn.train

    losses = [1.0, 1.1, 1.2, 0.9, 0.95, 0.96, 0.97, 0.98]  # after epochs 5, 10, ..., 40
    calls = []

    def scripted(model, x, val, cfg, device):
        calls.append(len(calls))
        loss = losses[min(len(calls) - 1, len(losses) - 1)]
        return {"val_loss": loss, "val_acc": 0.0}, {k: v.clone() for k, v in model.state_dict().items()}

    monkeypatch.setattr(jmrn.train, "validate", scripted)
    x, y = toy(12, 0)
    train = {"epochs": 40, "batch_size": 6, "lr": 1e-2, "patience": 1, "eval_every": 5,
             "device": "cpu", "select": "best_val"}
    variant = {"arch": "potion", "model": {"width": 0.125}}
    torch.manual_seed(0)
    model = build_variant_model(variant, (18, 3, 12, 16), 3)
    history = fit(model, x, y, make_train_config(train, variant, 0), tmp_path / "c.pt", val=toy(6, 1))
    # By hand, patience 1 counted in validations: 1.1 (after epoch 10) and 1.2 (after 15) are
    # two without improving on 1.0, so epochs 16-30 train at 1e-3; 0.95 and 0.96 (after 25, 30)
    # two without improving on 0.9, so epochs 31-40 at 1e-4. The validation after epoch 40
    # (0.98) steps nothing. Stepping every epoch would drop after epochs 3 and 6 instead.
    assert [h["lr"] for h in history] == pytest.approx([1e-2] * 15 + [1e-3] * 15 + [1e-4] * 10)
    assert len(calls) == 8
    assert [h["epoch"] for h in history if h["validated"]] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert all(np.isnan(h.get("val_loss", np.nan)) for h in history if not h["validated"])
    assert [h["epoch"] for h in history if h["selected"]] == [20]  # lowest loss among validations


@pytest.mark.parametrize("both,expected", [(True, [24, 24]), (False, [12, 12])])
def test_both_views_are_classified_in_every_row_and_maps_cropped(tmp_path, both, expected):
    """Without the contrastive term, the public trainer still classifies both augmented views
    (a batch of 2B); training sees random crops, validation and prediction the centred one."""
    from jmrn.train import predict

    shapes = []
    x, y = toy(24, 0)
    train = {"epochs": 1, "batch_size": 12, "lr": 1e-3, "patience": 5, "device": "cpu",
             "classify_both_views": both}
    variant = {"arch": "potion", "model": {"width": 0.125}, "crop": [8, 10],
               "augment": {"global_jitter": 0, "group_jitter": 0, "flip": True, "rotation": 0}}
    torch.manual_seed(0)
    model = build_variant_model(variant, (18, 3, 12, 16), 3)
    model.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    cfg = make_train_config(train, variant, 0)
    fit(model, x, y, cfg, tmp_path / "c.pt", val=toy(6, 1))
    assert [s[0] for s in shapes[:2]] == expected  # two training batches
    assert {s[1:] for s in shapes} == {(18, 3, 8, 10)}  # validation and BatchNorm passes too
    shapes.clear()
    predict(model, x, 3, crop=cfg.crop)
    whole = x[..., 2:10, 3:13]  # the centred 8 x 10 window of 12 x 16
    assert shapes == [(24, 18, 3, 8, 10)]
    torch.testing.assert_close(torch.from_numpy(predict(model, x, 3, crop=cfg.crop)["logits"]),
                               torch.from_numpy(predict(model, whole, 3)["logits"]))


def test_best_val_keeps_the_epoch_with_the_lowest_validation_loss(tmp_path):
    x, y = toy(18, 0)
    train = {"epochs": 5, "batch_size": 6, "lr": 3e-3, "patience": 5, "device": "cpu",
             "select": "best_val", "eval_every": 1}
    variant = {"arch": "potion", "model": {"width": 0.125}}
    torch.manual_seed(0)
    model = build_variant_model(variant, (18, 3, 12, 16), 3)
    history = fit(model, x, y, make_train_config(train, variant, 0), tmp_path / "c.pt", val=toy(9, 1))
    best = min(history, key=lambda h: h["val_loss"])
    assert all(h["validated"] for h in history)
    assert [h["epoch"] for h in history if h["selected"]] == [best["epoch"]]


def paper_config() -> dict:
    """config.yaml with paper.yaml merged on top (what `--configfile config/paper.yaml` gives)."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "paper.yaml").read_text()))
    return config


@pytest.mark.parametrize("classes", [21, 51])
def test_ablation_rows_are_sized_like_the_full_model(classes):
    config = paper_config()
    shape = (18, 3, 64, 86)
    count = {v: count_parameters(build_variant_model(resolve_variant(config, v), shape, classes))
             for v in ("jmrn_paa_cl", "potion", "potion_deep", "jmrn_nonsiamese", "jmrn_noreweight")}
    full = count["jmrn_paa_cl"]
    assert abs(count["potion_deep"] / full - 1) <= 0.10
    assert abs(count["jmrn_nonsiamese"] / full - 1) <= 0.10
    assert count["potion"] < 0.7 * full  # the plain baseline is not matched
    nonsiamese = build_variant_model(resolve_variant(config, "jmrn_nonsiamese"), shape, classes)
    assert len(nonsiamese.extractor.net) == 2  # shallower per-joint extractors


def test_paper_rows_follow_the_definitions():
    config = paper_config()
    rows = {v: paper_row(resolve_variant(config, v)) for v in config["variants"]}
    assert rows == {"potion": "PoTion", "potion_deep": "deeper baseline", "jmrn": "JMRN",
                    "jmrn_paa": "+PAA", "jmrn_paa_cl": "+PAA+contrastive",
                    "jmrn_nonsiamese": "non-Siamese", "jmrn_noreweight": "no re-weighting"}
    for name, change in {"potion_deep": {"paa": False}, "jmrn_noreweight": {"contrastive": False},
                         "jmrn_nonsiamese": {"match_parameters": None}}.items():
        spec = {k: v for k, v in {**config["variants"][name], **change}.items() if v is not None}
        changed = {**config, "variants": {**config["variants"], name: spec}}
        assert paper_row(resolve_variant(changed, name)) is None, name
    no_flip = {**config, "augment": {**config["augment"], "flip": False}}
    assert paper_row(resolve_variant(no_flip, "jmrn")) is None


# The columns of config/README.md's recipe table and the config files each merges onto the defaults.
RECIPE_COLUMNS = {
    "JHMDB": ["config/paper.yaml", "config/jhmdb.yaml"],
    "HMDB51": ["config/paper.yaml", "config/hmdb51.yaml"],
    "Charades": ["config/paper.yaml", "config/charades.yaml"],
    "AVA": ["config/paper.yaml", "config/ava.yaml"],
    "Kinetics→Mimetics": ["config/paper.yaml", "config/kinetics_mimetics.yaml"],
    "HMDB51 skeletons": ["config/paper.yaml", "config/mmaction_skeleton.yaml"],
    "UTD-MHAD": ["config/utd_mhad.yaml"],
    "demo": ["config/demo.yaml"],
}


def readme_recipe_table() -> dict[str, dict[str, str]]:
    """config/README.md's recipe table: column -> {config key: cell}."""
    text = (REPO / "config" / "README.md").read_text(encoding="utf-8")
    section = text.split("## Per-dataset recipes", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    table: dict[str, dict[str, str]] = {name: {} for name in header[1:]}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not cells[0].startswith("`"):
            continue
        key = cells[0].split("`")[1]
        for name, cell in zip(header[1:], cells[1:]):
            table[name][key] = cell
    return table


@pytest.mark.parametrize("column", list(RECIPE_COLUMNS))
def test_config_readme_states_each_datasets_effective_recipe(column, capsys):
    from jmrn.cli import merged_config
    from jmrn.recipe import effective_recipe

    recipe = effective_recipe(merged_config([str(REPO / f) for f in RECIPE_COLUMNS[column]]))
    print(column, recipe)
    stated = readme_recipe_table()[column]
    assert {k: stated.get(k) for k in recipe} == recipe


@pytest.mark.parametrize("column", list(RECIPE_COLUMNS))
def test_no_dataset_ramp_ends_after_its_last_epoch(column):
    from jmrn.cli import merged_config
    from jmrn.recipe import ramp_end

    config = merged_config([str(REPO / f) for f in RECIPE_COLUMNS[column]])
    assert ramp_end(config) <= config["train"]["epochs"]
    cfg = make_train_config(config["train"], resolve_variant(config, "jmrn_paa_cl"), 0)
    assert contrastive_weight_at(cfg, config["train"]["epochs"] - 1) == pytest.approx(
        config["train"]["contrastive_weight"])


def test_charades_lambda_is_the_public_scripts_per_epoch():
    """charades.yaml states 0.0375 over 75 epochs: the public 0.05 over 100, stopped at 75."""
    from jmrn.cli import merged_config

    config = merged_config([str(REPO / f) for f in RECIPE_COLUMNS["Charades"]])
    ours = make_train_config(config["train"], {"contrastive": True}, 0)
    public = make_train_config({"contrastive_weight": 0.05, "contrastive_ramp": {"start": 0, "length": 100}},
                               {"contrastive": True}, 0)
    assert [contrastive_weight_at(ours, e) for e in range(75)] == pytest.approx(
        [contrastive_weight_at(public, e) for e in range(75)])


def test_paper_figures_stand_only_beside_comparable_rows():
    """JHMDB on its ground-truth joints: the paper's OpenPose split-1 figures beside our split-1
    runs, its 3-split mean beside a 3-split run, our pose source in every row; no paper column
    for a dataset, split or metric the paper does not report."""
    from jmrn.cli import merged_config
    from jmrn.config import pose_source
    from jmrn.report import ablation_table

    config = merged_config([str(REPO / f) for f in RECIPE_COLUMNS["JHMDB"]])
    variants = {v: resolve_variant(config, v) for v in config["run_variants"]}
    long = pd.DataFrame([{"variant": v, "split": split, "seed": seed, "n_parameters": 1,
                          "mean_class_accuracy": 0.5 + 0.01 * split, "top1": 0.5}
                         for v in variants for split in (1, 2, 3) for seed in (0, 1)])
    poses = pose_source(config)
    assert poses == "ground-truth joints"
    table = ablation_table(long, variants, "mean_class_accuracy", "jhmdb", poses).set_index("variant")
    assert set(table["poses"]) == {"ground-truth joints"}
    assert table.loc["jmrn_paa_cl", "paper, split 1 (%), OpenPose"] == 71.08
    assert table.loc["jmrn_paa_cl", "ours, split 1 (%)"] == "51.00 ± 0.00 (2)"
    assert table.loc["jmrn_paa_cl", "paper, mean of 3 splits (%), OpenPose"] == 68.55
    assert table.loc["jmrn", "paper, mean of 3 splits (%), OpenPose"] == "—"
    assert table.loc["jmrn_noreweight", "paper, split 1 (%), OpenPose"] == "—"
    for args in ((long[long["split"] == 2], "mean_class_accuracy", "jhmdb"),  # no split 1
                 (long, "top1", "jhmdb"),  # a metric the paper does not give for JHMDB
                 (long, "mean_class_accuracy", "demo"), (long, "mean_class_accuracy", "skeleton")):
        columns = ablation_table(args[0], variants, args[1], args[2], poses).columns
        assert not [c for c in columns if c.startswith("paper,")], args[1:]
    split1 = ablation_table(long[long["split"] == 1], variants, "mean_class_accuracy", "hmdb51", "openpifpaf")
    assert "paper, split 1 (%), OpenPose" in split1 and not [c for c in split1 if "3 splits" in c]


def test_test_labels_influence_nothing(tmp_path):
    """Permuting the test labels leaves every trained model and fitted fusion weight unchanged."""
    from jmrn.export import export_variant
    from jmrn.fusion import fuse
    from conftest import labelled_potion_store
    from jmrn.store import PotionStore
    from jmrn.train import train_variant

    base = labelled_potion_store(tmp_path / "potion.zarr", seed=0)
    assert len(PotionStore(tmp_path / "potion.zarr")) == len(base)
    rng = np.random.default_rng(0)
    test = base["split1"] == "test"
    permuted = base.copy()
    order = rng.permutation(test.sum())
    for col in ("label", "label_name"):
        permuted.loc[test, col] = base.loc[test, col].to_numpy()[order]
    assert (permuted.loc[test, "label"] != base.loc[test, "label"]).any()
    train = {"epochs": 3, "batch_size": 8, "lr": 1e-3, "patience": 1, "device": "cpu",
             "val_fraction": 0.2, "select": "best_val", "contrastive_weight": 0.05,
             "temperature": 0.3, "contrastive_ramp": {"start": 1, "length": 2}}
    variants = {"potion": {"arch": "potion", "model": {"width": 0.125}, "augment": None},
                "jmrn": {"arch": "jmrn", "model": {"width": 0.125}, "contrastive": True,
                         "augment": {"global_jitter": 1.0, "group_jitter": 1.0, "flip": True,
                                     "rotation": 0.0}}}
    outputs = {}
    for tag, manifest in (("original", base), ("permuted", permuted)):
        root = tmp_path / tag
        root.mkdir()
        manifest.to_csv(root / "manifest.csv", index=False)
        logits = {}
        for name, variant in variants.items():
            d = root / name
            train_variant(str(tmp_path / "potion.zarr"), str(root / "manifest.csv"), 1,
                          {**variant, "name": name}, train, 0, str(d / "model.pt"), str(d / "history.csv"))
            export_variant(str(tmp_path / "potion.zarr"), str(root / "manifest.csv"), 1,
                           {**variant, "name": name}, str(d / "model.pt"), "cpu", str(d / "logits.csv"),
                           str(d / "metrics.json"), str(d / "joint_weights.csv"), seed=0,
                           val_fraction=0.2)
            logits[name] = str(d / "logits.csv")
        fuse(list(variants), logits, {}, 1, str(root / "weights.json"), str(root / "fused.csv"),
             str(root / "fusion.json"))
        outputs[tag] = root
    for rel in ("potion/model.pt", "jmrn/model.pt", "potion/history.csv", "jmrn/history.csv",
                "weights.json"):
        a, b = (outputs[t] / rel for t in ("original", "permuted"))
        assert a.read_bytes() == b.read_bytes(), rel
