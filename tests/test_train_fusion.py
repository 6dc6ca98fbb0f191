import numpy as np
import pandas as pd
import pytest
import torch

from jmrn.fusion import fit_scalar_weights, fuse
from jmrn.metrics import average_precision, mean_average_precision, mean_class_accuracy, top_k_accuracy
from jmrn.models import build_model
from jmrn.train import fit, make_train_config, predict

TRAIN = {"epochs": 4, "batch_size": 4, "lr": 1e-3, "patience": 2, "device": "cpu",
         "contrastive_ramp": {"start": 1, "length": 2}}
VARIANT = {"arch": "jmrn", "model": {"width": 0.125},
           "augment": {"global_jitter": 2, "group_jitter": 1, "flip": True}, "contrastive": True}


def toy_data(n=14, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.rand(n, 18, 3, 12, 16, generator=g) * 0.1
    x[torch.arange(n), y * 5, :, 4:8, 4:8] += 1.0  # class-specific joint lights up
    return x, y


def run(tmp_path, name, stop_after=None, resume_from=None):
    x, y = toy_data()
    torch.manual_seed(0)
    model = build_model("jmrn", 18, 3, 3, width=0.125)
    cfg = make_train_config(TRAIN, VARIANT, seed=0)
    ckpt = resume_from or tmp_path / f"{name}.pt"
    history = fit(model, x, y, cfg, ckpt, stop_after=stop_after)
    return model, history, ckpt


def test_training_is_deterministic(tmp_path):
    m1, h1, _ = run(tmp_path, "a")
    m2, h2, _ = run(tmp_path, "b")
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2]
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(v1, v2), k


def test_killed_run_resumes_to_the_same_result(tmp_path):
    full, h_full, _ = run(tmp_path, "full")
    _, h_part, ckpt = run(tmp_path, "part", stop_after=2)  # "killed" after 2 epochs
    assert len(h_part) == 2
    resumed, h_res, _ = run(tmp_path, "part", resume_from=ckpt)
    assert [r["loss"] for r in h_res] == [r["loss"] for r in h_full]
    for (k, v1), v2 in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v1, v2), k


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    _, _, ckpt = run(tmp_path, "x", stop_after=1)
    x, y = toy_data()
    model = build_model("jmrn", 18, 3, 3, width=0.125)
    cfg = make_train_config({**TRAIN, "lr": 5e-4}, VARIANT, seed=0)
    assert len(fit(model, x, y, cfg, ckpt)) == TRAIN["epochs"]


def test_model_learns_the_toy_task(tmp_path):
    x, y = toy_data(30)
    torch.manual_seed(0)
    model = build_model("potion", 18, 3, 3, width=0.125)
    cfg = make_train_config({**TRAIN, "epochs": 15}, {"arch": "potion"}, seed=0)
    fit(model, x, y, cfg, tmp_path / "c.pt")
    logits = predict(model, x, 3)["logits"]
    assert (logits.argmax(1) == y.numpy()).mean() > 0.9


def test_fusion_gives_a_noisy_modality_a_small_weight():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    good = np.eye(5)[y] * 3 + rng.normal(0, 1, (400, 5))
    noisy = rng.normal(0, 3, (400, 5))
    w = fit_scalar_weights(np.stack([good, noisy]), y).weights
    assert w[0] > 5 * w[1] and (w > 0).all()


def write_modality(path, y, subsets, rng, strength=1.5, k=4, seed=0):
    logits = np.eye(k)[y] * strength + rng.normal(0, 1.5, (len(y), k))
    t = pd.DataFrame(logits, columns=[f"c{i}" for i in range(k)])
    t.insert(0, "label", y)
    t.insert(0, "subset", subsets)
    t.insert(0, "video_id", [f"v {i}" for i in range(len(y))])
    t.sample(frac=1, random_state=seed).to_csv(path, index=False)  # row order must not matter
    return t


def test_fuse_writes_outputs_and_beats_single_modalities_on_val(tmp_path):
    rng = np.random.default_rng(1)
    n = 160
    y = rng.integers(0, 4, n)
    subsets = np.select([np.arange(n) < 80, np.arange(n) < 120], ["train", "val"], "test")
    for m in range(2):
        write_modality(tmp_path / f"m{m}.csv", y, subsets, rng, seed=m)
    out = fuse(["a", "b"], {"a": str(tmp_path / "m0.csv"), "b": str(tmp_path / "m1.csv")}, {}, 1,
               str(tmp_path / "w.json"), str(tmp_path / "l.csv"), str(tmp_path / "m.json"))
    assert out["fit"]["subset"] == "val" and out["fit"]["n"] == 40 and out["fit"]["moved"]
    losses = out["fit"]["losses"]
    assert losses["learned"] <= min(losses["a"], losses["b"]) + 1e-9
    assert set(out["test"]) == {"a", "b", "average", "learned"}
    assert set(pd.read_csv(tmp_path / "l.csv")["subset"]) == {"val", "test"}


def external_setup(tmp_path):
    rng = np.random.default_rng(2)
    n = 60
    y = rng.integers(0, 4, n)
    subsets = np.where(np.arange(n) < 40, "train", "test")
    ours = write_modality(tmp_path / "ours.csv", y, subsets, rng)  # no val rows: fit on train
    rgb = write_modality(tmp_path / "rgb.csv", y, subsets, rng, strength=3.0, seed=5)
    return ours, rgb


def test_external_csv_and_npy_streams(tmp_path):
    _, rgb = external_setup(tmp_path)
    for subset in ("train", "test"):
        part = rgb[rgb["subset"] == subset].drop(columns=["subset", "label"])
        part.sample(frac=1, random_state=1).to_csv(tmp_path / f"rgb_{subset}_split1.csv", index=False)
        np.save(tmp_path / f"flow_{subset}.npy", part[[f"c{i}" for i in range(4)]].to_numpy())
        (tmp_path / f"flow_{subset}.txt").write_text("\n".join(part["video_id"]) + "\n")
    external = {
        "rgb": {"train": str(tmp_path / "rgb_train_split{split}.csv"),
                "test": str(tmp_path / "rgb_test_split{split}.csv")},
        "flow": {"train": str(tmp_path / "flow_train.npy"), "train_ids": str(tmp_path / "flow_train.txt"),
                 "test": str(tmp_path / "flow_test.npy"), "test_ids": str(tmp_path / "flow_test.txt")},
    }
    out = fuse(["ours", "rgb", "flow"], {"ours": str(tmp_path / "ours.csv")}, external, 1,
               str(tmp_path / "w.json"), str(tmp_path / "l.csv"), str(tmp_path / "m.json"))
    assert out["test"]["rgb"] == out["test"]["flow"]  # same numbers, two file formats
    assert out["weights"]["rgb"] + out["weights"]["flow"] > out["weights"]["ours"]


@pytest.mark.parametrize("damage,message", [
    (lambda t: t.iloc[1:], "no logits for 1 videos"),
    (lambda t: t.rename(columns={"c3": "c9"}), r"missing \['c3'\], unexpected \['c9'\]"),
    (lambda t: t.assign(c0=np.where(np.arange(len(t)) == 2, np.nan, t["c0"])), "values that are not numbers"),
    (lambda t: pd.concat([t, t.iloc[:1]]), "duplicate video ids"),
])
def test_external_stream_errors_are_clear(tmp_path, damage, message):
    _, rgb = external_setup(tmp_path)
    for subset in ("train", "test"):
        part = rgb[rgb["subset"] == subset].drop(columns=["subset", "label"])
        (damage(part) if subset == "train" else part).to_csv(tmp_path / f"x_{subset}.csv", index=False)
    external = {"x": {"train": str(tmp_path / "x_train.csv"), "test": str(tmp_path / "x_test.csv")}}
    with pytest.raises(ValueError, match=message):
        fuse(["ours", "x"], {"ours": str(tmp_path / "ours.csv")}, external, 1, str(tmp_path / "w"),
             str(tmp_path / "l"), str(tmp_path / "m"))


def test_multilabel_fusion_learns_per_class_weights():
    rng = np.random.default_rng(3)
    n, k = 600, 3
    targets = (rng.random((n, k)) < 0.3).astype(float)
    a = targets * 4 - 2 + rng.normal(0, 1, (n, k))
    b = a.copy()
    a[:, 2] = rng.normal(0, 2, n)  # modality a knows nothing about class 2
    b[:, 0] = rng.normal(0, 2, n)  # modality b knows nothing about class 0
    w = fit_scalar_weights(np.stack([a, b]), targets, multilabel=True).weights
    assert w.shape == (2, 3)
    assert w[0, 0] > 3 * w[1, 0] and w[1, 2] > 3 * w[0, 2]


def test_metrics():
    y = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 1, 0])
    assert mean_class_accuracy(y, pred) == pytest.approx((0.5 + 1 + 0) / 3)
    scores = np.array([[.9, .1, 0], [.2, .7, .1], [.1, .3, .6]])
    assert top_k_accuracy(np.array([0, 2, 1]), scores, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(np.array([0, 2, 1]), scores, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(np.array([0, 2, 1]), scores, 3) == pytest.approx(1.0)
    assert average_precision(np.array([1, 0, 1]), np.array([.9, .8, .1])) == pytest.approx((1 + 2 / 3) / 2)
    t = np.array([[1, 0], [0, 0], [1, 0]])
    assert mean_average_precision(t, np.array([[.9, .1], [.8, .2], [.1, .3]])) == pytest.approx(5 / 6)


def overfit_and_honest_streams(tmp_path, n_per_subset=300, k=5, seed=0):
    """Stream "overfit": perfect and very confident on its training rows, right 45 % of the time
    elsewhere yet just as confident; stream "honest": right about 70 % everywhere, calibrated."""
    rng = np.random.default_rng(seed)
    subsets = np.repeat(["train", "val", "test"], n_per_subset)
    y = rng.integers(0, k, len(subsets))
    over = rng.normal(0, 1, (len(y), k))
    correct = (subsets == "train") | (rng.random(len(y)) < 0.45)
    guess = np.where(correct, y, (y + rng.integers(1, k, len(y))) % k)
    over[np.arange(len(y)), guess] += 25.0
    honest = rng.normal(0, 1, (len(y), k))
    honest[np.arange(len(y)), y] += 2.2
    paths = {}
    for name, values in (("overfit", over), ("honest", honest)):
        t = pd.DataFrame(values, columns=[f"c{i}" for i in range(k)])
        t.insert(0, "label", y)
        t.insert(0, "subset", subsets)
        t.insert(0, "video_id", [f"v{i}" for i in range(len(y))])
        t.to_csv(tmp_path / f"{name}.csv", index=False)
        paths[name] = str(tmp_path / f"{name}.csv")
    return paths


def test_fusion_fitted_on_validation_logits_is_not_fooled_by_an_overfit_stream(tmp_path):
    paths = overfit_and_honest_streams(tmp_path)
    out = fuse(["overfit", "honest"], paths, {}, 1, str(tmp_path / "w.json"), str(tmp_path / "l.csv"),
               str(tmp_path / "m.json"))
    test = out["test"]
    assert out["fit"]["subset"] == "val"
    assert out["weights"]["honest"] > out["weights"]["overfit"]
    assert test["learned"]["top1"] >= test["average"]["top1"]
    assert test["learned"]["top1"] >= max(test["overfit"]["top1"], test["honest"]["top1"]) - 0.01
    # the old recipe, fitting on the training logits, trusts the overfit stream and loses
    logits = np.stack([pd.read_csv(paths[n]) for n in ("overfit", "honest")])
    table = pd.read_csv(paths["honest"])
    train, test_rows = (table["subset"] == "train").to_numpy(), (table["subset"] == "test").to_numpy()
    values = logits[:, :, 3:].astype(float)
    old = fit_scalar_weights(values[:, train], table["label"].to_numpy()[train]).weights
    assert old[0] > old[1]
    old_acc = ((old[:, None, None] * values[:, test_rows]).sum(0).argmax(1)
               == table["label"].to_numpy()[test_rows]).mean()
    assert old_acc < test["learned"]["top1"] - 0.05


def test_fit_that_cannot_move_is_reported_as_such(tmp_path):
    rng = np.random.default_rng(4)
    n, k = 60, 3
    y = rng.integers(0, k, n)
    subsets = np.where(np.arange(n) < 30, "val", "test")
    for name in ("a", "b"):  # no information at all: all logits zero
        t = pd.DataFrame(np.zeros((n, k)), columns=[f"c{i}" for i in range(k)])
        t.insert(0, "label", y)
        t.insert(0, "subset", subsets)
        t.insert(0, "video_id", [f"v{i}" for i in range(n)])
        t.to_csv(tmp_path / f"{name}.csv", index=False)
    out = fuse(["a", "b"], {n: str(tmp_path / f"{n}.csv") for n in "ab"}, {}, 1,
               str(tmp_path / "w.json"), str(tmp_path / "l.csv"), str(tmp_path / "m.json"))
    assert not out["fit"]["moved"] and "learned" not in out["test"]
    assert "equal weights (fit did not move)" in out["test"]


def test_regularisation_strength_is_chosen_by_cross_validation():
    from jmrn.fusion import ALPHAS, fit_fusion

    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 200)
    good = np.eye(4)[y] * 2 + rng.normal(0, 1, (200, 4))
    fit = fit_fusion(np.stack([good, good + rng.normal(0, 0.1, (200, 4))]), y)
    assert set(fit.cv_loss) == {repr(a) for a in ALPHAS} and fit.alpha in ALPHAS
    assert fit.converged and fit.iterations > 0
