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
    train = {"epochs": 4, "batch_size": 6, "lr": 1e-3, "patience": 0, "device": "cpu",
             "contrastive_weight": 100.0, "contrastive_ramp": {"start": 2, "length": 1}}
    variant = {"arch": "jmrn", "augment": {"global_jitter": 1, "group_jitter": 1, "flip": True,
                                           "rotation": 0}, "contrastive": True}
    torch.manual_seed(0)
    model = build_variant_model({**variant, "model": {"width": 0.125}}, (18, 3, 12, 16), 3)
    history = fit(model, x, y, make_train_config(train, variant, 0), tmp_path / "c.pt", val=val)
    key = "val_loss" if with_val else "cls_loss"
    assert seen == [h[key] for h in history]
    assert history[2]["contrastive_weight"] == 100.0 and history[2]["loss"] > 10 * history[2]["cls_loss"]


def test_best_val_keeps_the_epoch_with_the_lowest_validation_loss(tmp_path):
    x, y = toy(18, 0)
    train = {"epochs": 5, "batch_size": 6, "lr": 3e-3, "patience": 5, "device": "cpu",
             "select": "best_val"}
    variant = {"arch": "potion", "model": {"width": 0.125}}
    torch.manual_seed(0)
    model = build_variant_model(variant, (18, 3, 12, 16), 3)
    history = fit(model, x, y, make_train_config(train, variant, 0), tmp_path / "c.pt", val=toy(9, 1))
    best = min(history, key=lambda h: h["val_loss"])
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


@pytest.mark.parametrize("dataset,expect", [
    ("hmdb51", {"batch_size": 128, "epochs": 150, "lr": 1e-4, "temperature": 0.1,
                "contrastive_weight": 0.5, "c_dim": 64, "global_jitter": 5.0, "group_jitter": 0.0,
                "ramp": {"start": 0, "length": 100}}),
    ("jhmdb", {"batch_size": 16, "epochs": 100, "lr": 1e-4, "temperature": 0.3,
               "contrastive_weight": 0.05, "c_dim": 128, "global_jitter": 7.0, "group_jitter": 4.0,
               "ramp": {"start": 50, "length": 50}}),
    ("charades", {"batch_size": 128, "epochs": 75, "lr": 5e-4, "temperature": 0.1,
                  "contrastive_weight": 0.05, "c_dim": 32, "global_jitter": 9.0, "group_jitter": 5.0,
                  "ramp": {"start": 0, "length": 100}, "dropout": 0.5}),
])
def test_dataset_files_give_the_public_recipes(dataset, expect):
    from snakemake.utils import update_config

    config = paper_config()
    update_config(config, yaml.safe_load((REPO / "config" / f"{dataset}.yaml").read_text()))
    full = resolve_variant(config, "jmrn_paa_cl")
    train = config["train"]
    got = {"batch_size": train["batch_size"], "epochs": train["epochs"], "lr": train["lr"],
           "temperature": train["temperature"], "contrastive_weight": train["contrastive_weight"],
           "c_dim": full["model"]["c_dim"], "global_jitter": full["augment"]["global_jitter"],
           "group_jitter": full["augment"]["group_jitter"], "ramp": train["contrastive_ramp"]}
    if "dropout" in expect:
        got["dropout"] = full["model"]["dropout"]
    assert got == expect
    assert resolve_variant(config, "jmrn")["augment"]["flip"] is True  # flip in every row
    assert resolve_variant(config, "jmrn")["augment"]["global_jitter"] == 0  # but no PAA


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
