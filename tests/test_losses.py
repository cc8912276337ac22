"""Loss formulas against hand-computed cases and a plain-Python reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from starft.losses import ClipLoss, StarLoss, clip_contrastive_loss, star_regularization


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def reference_star(x, w, x0, w0, labels, s, mask=True):
    """DESIGN §3 written out with Python floats: mean over rows of KL(teacher ‖ student)."""
    n = len(x)
    total = 0.0
    for i in range(n):
        cols = [j for j in range(n) if not (mask and labels[i] == labels[j])]
        if not cols:
            continue
        z = [s * sum(a * b for a, b in zip(x[i], w[j])) for j in cols]
        z0 = [s * sum(a * b for a, b in zip(x0[i], w0[j])) for j in cols]
        p, q = softmax(z), softmax(z0)
        total += sum(qj * (math.log(qj) - math.log(pj)) for pj, qj in zip(p, q))
    return total / n


def test_contrastive_identity_case():
    eye = torch.eye(2)
    expected = math.log(1 + math.exp(-1))  # each row: -log(e / (e + 1))
    assert clip_contrastive_loss(eye, eye, 1.0).item() == pytest.approx(expected, abs=1e-6)


def test_contrastive_duplicate_caption_case():
    x = torch.eye(2)
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # both samples share one caption
    # image->text logits [[1,1],[0,0]]: both rows log 2;
    # text->image logits [[1,0],[1,0]]: row 0 log(1+e^-1), row 1 log(1+e).
    image_side = math.log(2)
    text_side = 0.5 * (math.log(1 + math.exp(-1)) + math.log(1 + math.e))
    expected = 0.5 * (image_side + text_side)
    assert clip_contrastive_loss(x, y, 1.0).item() == pytest.approx(expected, abs=1e-6)


def test_contrastive_scale_is_a_multiplier_not_a_log():
    x = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    y = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    logits = 10.0 * x @ y.t()
    targets = torch.arange(4)
    expected = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))
    assert clip_contrastive_loss(x, y, 10.0).item() == pytest.approx(expected.item(), abs=1e-6)


def test_star_hand_computed_case():
    # labels [0, 0, 1]: rows 0 and 1 only see column 2 (softmax over one entry, KL 0);
    # row 2 sees columns 0 and 1: student softmax([1, 0]), teacher softmax([1, 1]) = [.5, .5].
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    w0 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    log_p = [1 - math.log(math.e + 1), -math.log(math.e + 1)]
    kl_row2 = sum(0.5 * (math.log(0.5) - lp) for lp in log_p)
    loss = star_regularization(x, w, x, w0, labels, 1.0)
    assert loss.item() == pytest.approx(kl_row2 / 3, abs=1e-6)


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_star_matches_plain_python_reference(mask, seed):
    g = torch.Generator().manual_seed(seed)
    n, d, s0 = 6, 5, 7.5
    feats = [F.normalize(torch.randn(n, d, generator=g), dim=-1) for _ in range(4)]
    labels = torch.randint(3, (n,), generator=g)
    got = star_regularization(*feats, labels, s0, mask_same_class=mask).item()
    want = reference_star(*(f.tolist() for f in feats), labels.tolist(), s0, mask)
    assert got == pytest.approx(want, abs=1e-6)


def test_star_uses_the_given_scale_for_both_student_and_teacher():
    g = torch.Generator().manual_seed(3)
    feats = [F.normalize(torch.randn(4, 3, generator=g), dim=-1) for _ in range(4)]
    labels = torch.tensor([0, 1, 2, 3])
    small = star_regularization(*feats, labels, 1.0).item()
    large = star_regularization(*feats, labels, 50.0).item()
    assert small != pytest.approx(large)
    assert large == pytest.approx(reference_star(*(f.tolist() for f in feats), [0, 1, 2, 3], 50.0))


def test_star_is_zero_and_finite_when_all_samples_share_a_class():
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(5, 4, generator=g), dim=-1).requires_grad_()
    w = F.normalize(torch.randn(5, 4, generator=g), dim=-1).requires_grad_()
    x0 = F.normalize(torch.randn(5, 4, generator=g), dim=-1)
    loss = star_regularization(x, w, x0, w, torch.zeros(5, dtype=torch.long), 100.0)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()


def test_star_gradients_are_finite_under_partial_masks_and_bf16():
    g = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(8, 16, generator=g), dim=-1).bfloat16().requires_grad_()
    w = F.normalize(torch.randn(8, 16, generator=g), dim=-1).bfloat16().requires_grad_()
    x0 = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    loss = star_regularization(x, w, x0, x0, labels, 100.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()


def test_star_is_zero_when_student_equals_teacher():
    g = torch.Generator().manual_seed(2)
    x = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    w = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    labels = torch.tensor([0, 1, 1, 2, 0, 3])
    assert star_regularization(x, w, x, w, labels, 30.0).item() == pytest.approx(0.0, abs=1e-6)


def test_modules_return_named_terms_equal_to_functional():
    g = torch.Generator().manual_seed(4)
    feats = [F.normalize(torch.randn(4, 3, generator=g), dim=-1) for _ in range(4)]
    labels = torch.tensor([0, 1, 0, 1])
    clip = ClipLoss()(feats[0], feats[1], torch.tensor(5.0))
    star = StarLoss(mask_same_class=True)(*feats, labels, 5.0)
    assert set(clip) == {"contrastive"} and set(star) == {"star"}
    assert clip["contrastive"].item() == pytest.approx(
        clip_contrastive_loss(feats[0], feats[1], 5.0).item()
    )
    assert star["star"].item() == pytest.approx(star_regularization(*feats, labels, 5.0).item())
