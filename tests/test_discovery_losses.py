"""RaVL stage-2 region-aware loss terms against a literal reading of the formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from starft.losses import RegionAwareLoss, region_text_losses
from starft.losses.functional import region_text_losses_local


def _naive(regions, texts, labels, spurious, valid, tau):
    """L_R and L_A summed over images, term by term in Python floats."""
    b, m = spurious.shape

    def e(i, r, j):  # exp(cos(f(r), g(t_{y_j})) / τ) for region r of image i
        return math.exp(float(regions[i, r] @ texts[j]) / tau)

    def kept(i):
        return [r for r in range(m) if valid[i, r] and not spurious[i, r]]

    def sigma(i, j):
        return max((e(i, r, j) for r in kept(i)), default=0.0)

    spur = [(i, r) for i in range(b) for r in range(m) if valid[i, r] and spurious[i, r]]
    loss_r = loss_a = 0.0
    rows = [i for i in range(b) if kept(i)]
    for i in rows:
        den_r = sum(sigma(i, j) for j in range(b))
        den_r += sum(max(e(k, r, j) for j in range(b)) for k, r in spur)
        loss_r -= math.log(sigma(i, i) / den_r)
        den_a = sigma(i, i) + sum(sigma(j, i) for j in range(b) if labels[j] != labels[i])
        den_a += sum(e(k, r, i) for k, r in spur)
        loss_a -= math.log(sigma(i, i) / den_a)
    return loss_r, loss_a, len(rows)


def _batch(seed=0, b=5, m=3, d=6, classes=3):
    g = torch.Generator().manual_seed(seed)
    regions = F.normalize(torch.randn(b, m, d, generator=g, dtype=torch.float64), dim=-1)
    class_text = F.normalize(torch.randn(classes, d, generator=g, dtype=torch.float64), dim=-1)
    labels = torch.randint(0, classes, (b,), generator=g)
    spurious = torch.rand(b, m, generator=g) < 0.3
    valid = torch.rand(b, m, generator=g) < 0.85
    valid[:, 0] = True
    spurious[0] = True  # image 0 has no non-spurious region: contributes no row
    return regions, class_text[labels], labels, spurious, valid


def test_hand_computed_two_images():
    # 2-d features, τ = 1: image 0 (class 0) has regions at 0° (kept) and 90° (spurious);
    # image 1 (class 1) one kept region at 90°. Texts: class 0 at 0°, class 1 at 90°.
    regions = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    valid = torch.tensor([[True, True], [True, False]])
    spurious = torch.tensor([[False, True], [False, False]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    loss_r, loss_a = region_text_losses(
        regions, texts, labels, spurious, valid, temperature=1.0, reduction="sum"
    )
    e = math.e
    # L_R: row 0 = −log(e / (e + 1 + e)); row 1 = −log(e / (1 + e + e)) (the spurious region's
    # best text is class 1: cos = 1)
    assert loss_r.item() == pytest.approx(2 * -math.log(e / (2 * e + 1)), abs=1e-6)
    # L_A: row 0 = −log(e / (e + σ(R_1, t_0) = 1 + spurious·t_0 = 1));
    # row 1 = −log(e / (e + σ(R_0, t_1) = 1 + spurious·t_1 = e))
    expected_a = -math.log(e / (e + 2)) - math.log(e / (2 * e + 1))
    assert loss_a.item() == pytest.approx(expected_a, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_matches_the_formulas_term_by_term(seed, tau):
    regions, texts, labels, spurious, valid = _batch(seed)
    ref_r, ref_a, rows = _naive(regions, texts, labels.tolist(), spurious, valid, tau)
    loss_r, loss_a = region_text_losses(regions, texts, labels, spurious, valid, temperature=tau)
    assert loss_r.item() == pytest.approx(ref_r / rows, rel=1e-5)
    assert loss_a.item() == pytest.approx(ref_a / rows, rel=1e-5)
    sum_r, sum_a = region_text_losses(
        regions, texts, labels, spurious, valid, temperature=tau, reduction="sum"
    )
    assert sum_r.item() == pytest.approx(ref_r, rel=1e-5)
    assert sum_a.item() == pytest.approx(ref_a, rel=1e-5)


def test_padding_is_ignored_and_gradients_are_finite():
    regions, texts, labels, spurious, valid = _batch(3)
    regions.requires_grad_(True)
    loss_r, loss_a = region_text_losses(regions, texts, labels, spurious, valid)
    (loss_r + loss_a).backward()
    assert torch.isfinite(regions.grad).all()
    assert (regions.grad[~valid] == 0).all()
    # changing a padded region changes nothing
    moved = regions.detach().clone()
    moved[~valid] = F.normalize(torch.ones_like(moved[~valid]), dim=-1)
    again = region_text_losses(moved, texts, labels, spurious, valid)
    assert again[0].item() == pytest.approx(loss_r.item(), rel=1e-6)
    assert again[1].item() == pytest.approx(loss_a.item(), rel=1e-6)


def test_spurious_regions_are_only_negatives():
    # one image, two classes in the batch: a region aligned with the image's own class text
    # lowers L_R as a kept region and raises it as a spurious one
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    regions = torch.tensor([[[0.6, 0.8], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    valid = torch.ones(2, 2, dtype=torch.bool)
    plain = torch.zeros(2, 2, dtype=torch.bool)
    marked = plain.clone()
    marked[0, 1] = True
    kept_r, _ = region_text_losses(regions, texts, labels, plain, valid)
    spur_r, _ = region_text_losses(regions, texts, labels, marked, valid)
    assert spur_r.item() > kept_r.item()


def test_no_row_left_gives_a_connected_zero():
    regions = F.normalize(torch.randn(2, 2, 4), dim=-1).requires_grad_(True)
    texts = F.normalize(torch.randn(2, 4), dim=-1)
    out = RegionAwareLoss()(
        regions, texts, torch.tensor([0, 1]), torch.ones(2, 2, dtype=torch.bool)
    )
    assert set(out) == {"region_to_text", "text_to_region"}
    assert out["region_to_text"].item() == 0.0
    out["region_to_text"].backward()
    assert torch.isfinite(regions.grad).all()


def test_local_rows_average_to_the_global_loss():
    regions, texts, labels, spurious, valid = _batch(4, b=6)
    whole = region_text_losses(regions, texts, labels, spurious, valid)
    halves = [
        region_text_losses_local(
            regions[s : s + 3],
            texts[s : s + 3],
            labels[s : s + 3],
            spurious[s : s + 3],
            valid[s : s + 3],
            regions,
            texts,
            labels,
            spurious,
            valid,
            offset=s,
        )
        for s in (0, 3)
    ]
    for term in (0, 1):
        mean = (halves[0][term] + halves[1][term]) / 2
        assert mean.item() == pytest.approx(whole[term].item(), rel=1e-5)


def test_module_matches_the_function():
    regions, texts, labels, spurious, valid = _batch(5)
    out = RegionAwareLoss(temperature=0.1)(regions, texts, labels, spurious, valid)
    loss_r, loss_a = region_text_losses(regions, texts, labels, spurious, valid, temperature=0.1)
    assert out["region_to_text"].item() == loss_r.item()
    assert out["text_to_region"].item() == loss_a.item()
    with pytest.raises(ValueError, match="temperature"):
        RegionAwareLoss(temperature=0.0)
