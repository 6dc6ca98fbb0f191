import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jmrn.augment import (AugmentConfig, augment, center_crop, check_crop, joint_shifts,
                          random_crop, transform_maps)
from jmrn.errors import UserError
from jmrn.losses import joint_contrastive_loss
from jmrn.models import build_model
from jmrn.pose.skeleton import GROUPS, JOINT_INDEX, flip_permutation


@pytest.mark.parametrize("arch,opts", [
    ("potion", {}), ("potion", {"extra_layers": 3}), ("jmrn", {}), ("jmrn", {"siamese": False}),
    ("jmrn", {"reweight": False}), ("jmrn", {"hard_selector": True}),
])
def test_model_shapes(arch, opts):
    torch.manual_seed(0)
    model = build_model(arch, 18, 3, 7, width=0.125, **opts)
    out = model(torch.rand(3, 18, 3, 32, 43))
    assert out["logits"].shape == (3, 7)
    if arch == "jmrn":
        w = out["joint_weights"]
        assert w.shape == (3, 18) and ((w >= 0) & (w <= 1)).all()
        if opts.get("reweight") is False:
            assert (w == 1).all()
        if opts.get("hard_selector"):
            assert set(w.unique().tolist()) <= {0.0, 1.0}
        z = out["embeddings"]
        torch.testing.assert_close(z.norm(dim=-1), torch.ones(3, 18))


def test_paper_size_parameter_counts():
    counts = {name: sum(p.numel() for p in build_model(*spec).parameters()) for name, spec in {
        "potion": ("potion", 18, 3, 51), "jmrn": ("jmrn", 18, 3, 51)}.items()}
    assert 4e6 < counts["potion"] < 5e6 and 7e6 < counts["jmrn"] < 9e6


def test_siamese_extractor_shares_weights_across_joints():
    torch.manual_seed(0)
    model = build_model("jmrn", 4, 3, 5, width=0.125).eval()
    x = torch.rand(2, 4, 3, 16, 16)
    r = model.extractor(x)
    for j in range(4):  # batched call == running the extractor on each joint alone
        torch.testing.assert_close(r[:, j], model.extractor.net(x[:, j]), rtol=1e-5, atol=1e-6)


def _step(model, x: torch.Tensor, chunk: int | None, seed: int = 0):
    """Outputs, input gradient and parameter gradients of one train-mode fp32 step with chunk joints."""
    model.extractor.joints_per_chunk = chunk
    model.zero_grad()
    x = x.clone().requires_grad_()
    torch.manual_seed(seed)
    out = model(x)
    (out["logits"].pow(2).sum() + out["embeddings"].sum()).backward()
    after = torch.rand(4)  # the RNG stream continues where the folded one does
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out, x.grad, grads, after


@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_chunked_model_gives_the_folded_numbers(dropout):
    torch.manual_seed(0)
    model = build_model("jmrn", 5, 3, 4, width=0.125, dropout=dropout).train()  # BatchNorm: batch stats
    x = torch.rand(3, 5, 3, 16, 21) * 4 + 1  # input BatchNorm statistics far from 0 / 1
    folded = _step(model, x, 5)
    for chunk in (1, 2, 3):
        out, xgrad, grads, after = _step(model, x, chunk)
        torch.testing.assert_close(after, folded[3], rtol=0, atol=0)  # same dropout draws
        for key in out:
            torch.testing.assert_close(out[key], folded[0][key], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(xgrad, folded[1], rtol=1e-4, atol=1e-5)
        assert grads.keys() == folded[2].keys() and len(grads) > 10
        for name in grads:
            torch.testing.assert_close(grads[name], folded[2][name], rtol=1e-4, atol=1e-5, msg=name)
    # BatchNorm's running statistics are updated by the whole batch, chunked or not
    assert model.input_norm.num_batches_tracked == 4


@pytest.mark.parametrize("dropout,bf16", [(0.25, False), (0.25, True)])
def test_chunked_extractor_gives_the_folded_numbers(dropout, bf16):
    """The extractor alone, also under bf16 autocast: the same features and input gradient,
    and weight gradients that differ only by rounding (summed per chunk, then over chunks).
    The whole model in bf16 is not compared: its downstream layers see another memory layout
    and the input BatchNorm's gradient amplifies bf16 rounding."""
    torch.manual_seed(0)
    extractor = build_model("jmrn", 5, 3, 4, width=0.125, dropout=dropout).train().extractor
    x = torch.rand(3, 5, 3, 16, 21)
    upstream = torch.randn(3, 5, extractor.out_channels, 4, 6)

    def run(chunk: int):
        extractor.joints_per_chunk = chunk
        extractor.zero_grad()
        xi = x.clone().requires_grad_()
        torch.manual_seed(1)
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            r = extractor(xi)
        r.backward(upstream.to(r.dtype))
        return r, xi.grad, {n: p.grad.clone() for n, p in extractor.named_parameters()}, torch.rand(4)

    folded = run(5)
    for chunk in (1, 2, 3):
        r, xgrad, grads, after = run(chunk)
        torch.testing.assert_close(after, folded[3], rtol=0, atol=0)  # same dropout draws
        torch.testing.assert_close(r, folded[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xgrad, folded[1], rtol=1e-5, atol=1e-6)
        for name, grad in grads.items():
            scale = folded[2][name].abs().max()
            rel = 2e-2 if bf16 else 1e-5  # bf16: a few units in the last place (2^-8)
            torch.testing.assert_close(grad / scale, folded[2][name] / scale, rtol=0, atol=rel,
                                       msg=name)
    # evaluation, as export and predict run it: no dropout, no graph
    extractor.eval()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        outputs = []
        for chunk in (5, 3):
            extractor.joints_per_chunk = chunk
            outputs.append(extractor(x))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)


def test_chunked_extractor_keeps_float64_weights_under_autocast():
    """Autocast casts only float32 tensors; the chunks' weights follow that rule."""
    extractor = build_model("jmrn", 5, 3, 4, width=0.125).extractor.double()
    x = torch.rand(2, 5, 3, 16, 21, dtype=torch.float64)
    with torch.autocast("cpu", torch.bfloat16):
        extractor.joints_per_chunk = 2
        chunked = extractor(x)
        extractor.joints_per_chunk = 5
        folded = extractor(x)
    assert chunked.dtype == torch.float64
    torch.testing.assert_close(chunked, folded)


def test_extractor_chunks_by_device_and_size():
    model = build_model("jmrn", 18, 3, 4)
    ext = model.extractor
    assert ext.chunk_joints(torch.zeros(16, 18, 3, 64, 86)) == 1  # 11 MB per joint
    assert 1 < ext.chunk_joints(torch.zeros(8, 18, 3, 32, 43)) < 18
    assert ext.chunk_joints(torch.zeros(1, 18, 3, 8, 8)) == 18  # small: the fold is one chunk
    ext.joints_per_chunk = 4
    assert ext.chunk_joints(torch.zeros(16, 18, 3, 64, 86)) == 4
    assert build_model("jmrn", 18, 3, 4, siamese=False).extractor.siamese is False


def test_hard_selector_passes_gradients():
    torch.manual_seed(0)
    model = build_model("jmrn", 18, 3, 4, width=0.125, hard_selector=True)
    model(torch.rand(4, 18, 3, 16, 16))["logits"].sum().backward()
    assert model.selector.fc.weight.grad.abs().sum() > 0


def contrastive_by_loops(z: torch.Tensor, y: list, tau: float) -> torch.Tensor:
    """Direct transcription of eq. 1-2: per joint, the mean over anchors with a positive of the
    mean over their positives of -log softmax; then the mean over joints (the public code's
    normalisation, which its lambda values refer to)."""
    b, j, _ = z.shape
    total = torch.zeros((), dtype=torch.float64)
    for jj in range(j):
        losses = []
        for a in range(b):
            pos = [p for p in range(b) if p != a and y[p] == y[a]]
            if not pos:
                continue
            denom = sum(torch.exp(z[a, jj] @ z[k, jj] / tau) for k in range(b) if k != a)
            losses.append(-sum(torch.log(torch.exp(z[a, jj] @ z[p, jj] / tau) / denom) for p in pos) / len(pos))
        if losses:
            total = total + sum(losses) / len(losses)
    return total / j


def test_contrastive_loss_matches_equation():
    torch.manual_seed(0)
    z = F.normalize(torch.randn(10, 3, 8, dtype=torch.float64), dim=-1)
    y = [0, 1, 0, 2, 1, 3, 0, 2, 4, 1]  # 3 and 4 have no positive
    got = joint_contrastive_loss(z, torch.tensor(y), 0.3)
    torch.testing.assert_close(got, contrastive_by_loops(z, y, 0.3), rtol=1e-5, atol=1e-5)


def test_contrastive_loss_without_positives_is_zero_not_nan():
    z = F.normalize(torch.randn(4, 2, 5), dim=-1).requires_grad_()
    loss = joint_contrastive_loss(z, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(z.grad).all()


def test_contrastive_multilabel_positives_share_any_label():
    z = F.normalize(torch.randn(3, 1, 4, dtype=torch.float64), dim=-1)
    multi = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    single = torch.tensor([0, 0, 1])  # same positive structure
    torch.testing.assert_close(joint_contrastive_loss(z, multi), joint_contrastive_loss(z, single))


def test_flip_twice_is_identity():
    x = torch.rand(2, 18, 3, 8, 12)
    no = torch.zeros(2, 18, 2)
    flip = torch.tensor([True, True])
    once = transform_maps(x, no, flip, torch.zeros(2))
    assert not torch.allclose(once, x)
    torch.testing.assert_close(transform_maps(once, no, flip, torch.zeros(2)), x, atol=1e-5, rtol=0)
    perm = flip_permutation()
    assert perm[JOINT_INDEX["left_wrist"]] == JOINT_INDEX["right_wrist"]
    assert perm[JOINT_INDEX["nose"]] == JOINT_INDEX["nose"]


def test_group_jitter_never_moves_the_torso_and_moves_groups_rigidly():
    gen = torch.Generator().manual_seed(0)
    shifts = joint_shifts(50, AugmentConfig(global_jitter=0, group_jitter=4, flip=False), gen)
    torso = [JOINT_INDEX[n] for n in GROUPS["torso"]]
    assert (shifts[:, torso] == 0).all()
    arm = [JOINT_INDEX[n] for n in GROUPS["left_arm"]]
    assert (shifts[:, arm] == shifts[:, arm[:1]]).all() and shifts[:, arm].abs().max() <= 4
    assert shifts[:, arm].abs().max() > 0


def test_global_jitter_moves_all_joints_alike():
    gen = torch.Generator().manual_seed(1)
    shifts = joint_shifts(20, AugmentConfig(global_jitter=7, group_jitter=0, flip=False), gen)
    assert (shifts == shifts[:, :1]).all() and shifts.abs().max() <= 7


def test_integer_shift_moves_content_by_that_many_pixels():
    x = torch.zeros(1, 18, 1, 10, 10)
    x[..., 4, 4] = 1
    s = torch.zeros(1, 18, 2)
    s[..., 0], s[..., 1] = 2, -1
    out = transform_maps(x, s, torch.tensor([False]), torch.zeros(1))
    assert out[0, 0, 0].argmax().item() == 3 * 10 + 6


def test_augment_is_deterministic_given_the_generator():
    x = torch.rand(3, 18, 3, 8, 12)
    cfg = AugmentConfig(rotation=10)
    a = augment(x, cfg, torch.Generator().manual_seed(5))
    b = augment(x, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert np.isfinite(a.numpy()).all()


@pytest.mark.parametrize("arch,opts,expected", [
    ("potion", {}, 6), ("potion", {"extra_layers": 3}, 9), ("jmrn", {}, 6),
    ("jmrn", {"siamese": False, "extractor_layers": 2}, 4),
])
def test_dropout_follows_every_convolution_as_the_public_model(arch, opts, expected):
    """Dropout2d after each convolution of PoTion, of JMRN's per-joint extractor and of its
    reasoning head's two 3x3 convolutions (public models.py); rate 0 adds no module at all."""
    dropped = build_model(arch, 18, 3, 7, width=0.125, dropout=0.25, **opts)
    plain = build_model(arch, 18, 3, 7, width=0.125, **opts)
    rates = [m.p for m in dropped.modules() if isinstance(m, torch.nn.Dropout2d)]
    assert rates == [0.25] * expected
    assert not [m for m in plain.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d))]
    assert dropped.state_dict().keys() == plain.state_dict().keys()
    if arch == "jmrn":
        convs = [m for m in dropped.extractor.net.modules() if isinstance(m, torch.nn.Sequential)
                 and isinstance(m[0], torch.nn.Conv2d)]
        assert all(isinstance(block[-1], torch.nn.Dropout2d) for block in convs)
        assert not isinstance(dropped.head.net[0][-1], torch.nn.Dropout2d)  # not after the 1x1


def test_random_crop_takes_a_window_of_each_sample():
    n, h, w = 64, 6, 9
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, 1, h, w).expand(n, 18, 3, h, w)
    out = random_crop(x, (4, 5), torch.Generator().manual_seed(0))
    assert out.shape == (n, 18, 3, 4, 5)
    top, left = (out[:, 0, 0, 0, 0] // w).long(), (out[:, 0, 0, 0, 0] % w).long()
    for i in range(n):  # each sample a contiguous window, the same for every joint and channel
        assert torch.equal(out[i], x[i, :, :, top[i]:top[i] + 4, left[i]:left[i] + 5])
    assert set(top.tolist()) == {0, 1, 2} and set(left.tolist()) == {0, 1, 2, 3, 4}  # all offsets
    assert random_crop(x, (h, w), torch.Generator()) is x  # the whole map: nothing drawn


def test_center_crop_rounds_as_the_public_loader():
    x = torch.arange(64 * 86, dtype=torch.float32).reshape(1, 1, 1, 64, 86)
    out = center_crop(x, (64, 64))
    assert out.shape[-2:] == (64, 64) and out[0, 0, 0, 0, 0].item() == 11  # (86 - 64) / 2
    odd = center_crop(torch.zeros(1, 1, 1, 9, 10), (4, 4))  # numpy rounds 2.5 -> 2, 3.0 -> 3
    assert odd.shape[-2:] == (4, 4)
    assert center_crop(x, None) is x
    with pytest.raises(UserError, match="larger than the PoTion maps"):
        check_crop((64, 90), x.shape)
