"""Loss formulas against hand-computed cases and a plain-Python reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from starft.losses import (
    ClipLoss,
    SelfDistillationLoss,
    StarLoss,
    clip_contrastive_loss,
    context_kl,
    cross_projection_penalty,
    lipsum_energy_loss,
    orthogonality_penalty,
    self_distillation_loss,
    soft_cross_entropy,
    star_regularization,
)


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def reference_star(x, w, x0, w0, labels, s, mask=True):
    """The Star term written out with Python floats: mean over rows of KL(teacher ‖ student)."""
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
    assert want > 1e-3  # a real KL, not one decided at the rounding floor
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


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


# -- CAR-FT, CaRot, Lipsum-FT -------------------------------------------------------------------
def test_context_kl_hand_computed_case():
    # Row 0: student p = softmax([1, 0]) = [e, 1]/(e+1), teacher q = softmax([0, 1]) = [1, e]/(e+1).
    # KL(q ‖ p) = q0 (log q0 - log p0) + q1 (log q1 - log p1) = (1/(e+1))(-1) + (e/(e+1))(+1)
    #           = (e - 1)/(e + 1). Row 1: student = teacher, KL 0. batchmean over 2 rows.
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x0 = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    contexts = torch.eye(2)
    expected = (math.e - 1) / (math.e + 1) / 2
    assert context_kl(x, x0, contexts, 1.0).item() == pytest.approx(expected, abs=1e-6)


def test_context_kl_uses_the_scale_and_targets_the_teacher():
    # With s = 2 the logits double: p = softmax([2, 0]), q = softmax([0, 2]); KL = tanh(1)·2.
    x, x0 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    expected = 2 * (math.e**2 - 1) / (math.e**2 + 1)
    assert context_kl(x, x0, torch.eye(2), 2.0).item() == pytest.approx(expected, abs=1e-6)
    # Asymmetric case: the teacher must be the target distribution of the KL.
    x, x0 = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0]])
    p = softmax([1.0, 0.0, 0.0])
    kl_teacher_target = sum((1 / 3) * (math.log(1 / 3) - math.log(pj)) for pj in p)
    assert context_kl(x, x0, torch.eye(3), 1.0).item() == pytest.approx(kl_teacher_target)


def test_orthogonality_penalty_hand_computed_cases():
    # W = diag(1, 2): WᵀW - I = diag(0, 3), Frobenius norm 3 (not squared).
    assert orthogonality_penalty(torch.diag(torch.tensor([1.0, 2.0]))).item() == pytest.approx(3.0)
    # W = [[1, 1], [0, 0], [0, 0]]: WᵀW = [[1, 1], [1, 1]], minus I = [[0, 1], [1, 0]] -> √2.
    w = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    assert orthogonality_penalty(w).item() == pytest.approx(math.sqrt(2))
    # Orthonormal columns: exactly 0, with a finite (zero) gradient at the minimum.
    w = torch.eye(3)[:, :2].clone().requires_grad_()
    loss = orthogonality_penalty(w)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(w.grad, torch.zeros_like(w))


def test_cross_projection_penalty_hand_computed_case():
    # W_v W_tᵀ = [[1, 0], [0, 0]] @ [[2, 0], [0, 3]]ᵀ = [[2, 0], [0, 0]] -> 2.
    w_v = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    w_t = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    assert cross_projection_penalty(w_v, w_t).item() == pytest.approx(2.0)


def test_soft_cross_entropy_hand_computed_case():
    # Targets softmax([0, ln 3]) = [1/4, 3/4]; student log_softmax([0, 0]) = [-ln 2, -ln 2].
    # -(1/4)(-ln 2) - (3/4)(-ln 2) = ln 2. Second row: target = student = [1, 0] logits.
    logits = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    target = torch.tensor([[0.0, math.log(3)], [1.0, 0.0]])
    entropy = math.log(1 + math.e) - math.e / (1 + math.e)  # H(softmax([1, 0]))
    expected = 0.5 * (math.log(2) + entropy)
    assert soft_cross_entropy(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_self_distillation_hand_computed_case():
    # X = Y = I (2 samples), student scale 1: both directions' logits are I, softmax rows
    # [e, 1]/(e+1). Teacher scale 0: uniform targets [1/2, 1/2]. Per row the soft CE is
    # -(1/2)[log p0 + log p1] = -(1/2)[1 - 2 ln(1+e)] = ln(1+e) - 1/2; every row alike, and the
    # two directions are summed (as released): 2 ln(1+e) - 1.
    eye = torch.eye(2)
    loss = self_distillation_loss(eye, eye, eye, eye, 1.0, 0.0)
    assert loss.item() == pytest.approx(2 * math.log(1 + math.e) - 1, abs=1e-6)


def test_self_distillation_directions_and_module():
    g = torch.Generator().manual_seed(5)
    x, y, xt, yt = (F.normalize(torch.randn(5, 4, generator=g), dim=-1) for _ in range(4))
    i2t = soft_cross_entropy(3.0 * x @ y.t(), 7.0 * xt @ yt.t())
    t2i = soft_cross_entropy(3.0 * y @ x.t(), 7.0 * yt @ xt.t())
    got = self_distillation_loss(x, y, xt, yt, 3.0, 7.0)
    assert got.item() == pytest.approx((i2t + t2i).item(), abs=1e-6)
    terms = SelfDistillationLoss()(x, y, xt, yt, torch.tensor(3.0), 7.0)
    assert set(terms) == {"self_distillation"}
    assert terms["self_distillation"].item() == pytest.approx(got.item(), abs=1e-6)


def test_lipsum_energy_hand_computed_case():
    # Row 0: s (x - x0) Tᵀ = 2·[1, -1] @ I = [2, -2]; squared sum 8, / 2K = 4 -> 2.
    # Row 1: x = x0 -> 0. Mean over the batch: 1.
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x0 = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert lipsum_energy_loss(x, x0, torch.eye(2), 2.0).item() == pytest.approx(1.0)


def test_lipsum_energy_matches_the_released_formula():
    g = torch.Generator().manual_seed(6)
    x, x0 = (F.normalize(torch.randn(4, 8, generator=g), dim=-1) for _ in range(2))
    texts = F.normalize(torch.randn(80, 8, generator=g), dim=-1)
    s = 100.0
    source, target = s * x @ texts.t(), s * x0 @ texts.t()
    released = ((source - target) ** 2).sum(dim=-1).div(2 * 80).mean()
    assert lipsum_energy_loss(x, x0, texts, s).item() == pytest.approx(released.item(), rel=1e-5)
