"""RobustViT and CFT: each loss term by hand, and a step that lowers the alignment loss."""

from __future__ import annotations

import math

import pytest
import torch

from starft.config import OptimConfig
from starft.errors import StarftError
from starft.losses import (
    RelevanceAlignmentLoss,
    cft_loss,
    confidence_cross_entropy,
    relevance_bce_terms,
    relevance_mse_terms,
    robustvit_loss,
)
from starft.methods import StepInfo, Task, create_method
from starft.models import create_model
from starft.train.optim import build_optimizer
from starft.train.sampling import seeded_generator

CLASSES = ["star", "circle", "square"]
TEMPLATES = ["a photo of a {}."]
R = torch.tensor([[[0.5, 1.0], [0.0, 0.25]]])
M = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])


# -- loss terms by hand ---------------------------------------------------------------------------
def test_mse_terms_hand_computed():
    background, foreground = relevance_mse_terms(R, M)
    # R⊙(1−M) = [0, 1, 0, .25] -> mean of squares (1 + .0625) / 4
    assert background.item() == pytest.approx(1.0625 / 4)
    # R⊙M − M = [.5−1, 0, 0−1, 0] -> (.25 + 1) / 4
    assert foreground.item() == pytest.approx(1.25 / 4)


def test_bce_terms_hand_computed():
    context, concept = relevance_bce_terms(R, M)
    # BCE(x, 0) = −log(1−x): x = [0, 1, 0, .25]; torch clamps log at −100
    assert context.item() == pytest.approx((100 - math.log(0.75)) / 4, rel=1e-6)
    # BCE(R⊙M, M): pixel (0,0) x .5 y 1 -> −log .5; (1,0) x 0 y 1 -> 100; others x 0 y 0 -> 0
    assert concept.item() == pytest.approx((-math.log(0.5) + 100) / 4, rel=1e-6)


def test_clamped_bce_values_equal_torch_and_gradient_is_finite_where_saturated():
    from starft.losses.functional import binary_cross_entropy_clamped

    x = torch.tensor([0.0, 1.0, 0.3, 1.0, 0.0, 0.7], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    ours = binary_cross_entropy_clamped(x, y)
    assert ours.item() == pytest.approx(torch.nn.functional.binary_cross_entropy(x, y).item())
    (grad,) = torch.autograd.grad(ours, x)
    # saturated pixels: the clamped loss is flat (torch's backward gives ±1e12 / 6 there)
    assert grad[0] == 0 and grad[1] == 0
    assert grad[2].item() == pytest.approx(-1 / 0.3 / 6) and grad[5].item() == pytest.approx(
        1 / 0.3 / 6
    )


def test_confidence_ce_and_full_losses_hand_computed():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    # targets = argmax = [0, 1]; with T = 2: logits/2 = [[1, 0], [0, .5]]
    expected = 0.5 * (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-0.5)))
    assert confidence_cross_entropy(logits, 2.0).item() == pytest.approx(expected)
    ce = confidence_cross_entropy(logits).item()
    b, f = (t.item() for t in relevance_mse_terms(R, M))
    assert robustvit_loss(R, M, logits).item() == pytest.approx(0.8 * (2 * b + 0.3 * f) + 0.2 * ce)
    c, k = (t.item() for t in relevance_bce_terms(R, M))
    assert cft_loss(R, M, logits).item() == pytest.approx(0.8 * (1.2 * c + 0.5 * k) + 0.2 * ce)


def test_loss_module_names_its_terms():
    terms = RelevanceAlignmentLoss("cft", 1.2, 0.5)(R, M, torch.tensor([[1.0, 0.0]]))
    assert set(terms) == {"context", "concept", "alignment", "confidence"}
    assert terms["alignment"].item() == pytest.approx(
        1.2 * terms["context"].item() + 0.5 * terms["concept"].item()
    )


# -- the methods ----------------------------------------------------------------------------------
def _batch(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n, size, size)
    mask[:, 8:24, 4:20] = 1
    parts = torch.zeros(n, 2, size, size)
    parts[:, 0, 8:16, 4:20] = 1
    parts[:, 1, 16:24, 4:20] = 1
    return {
        "image": torch.randn(n, 3, size, size, generator=g),
        "label": torch.tensor([i % len(CLASSES) for i in range(n)]),
        "mask": mask,
        "parts": parts,
        "part_weights": torch.tensor([[2.0, 1.0]] * n),
    }


def _make(name, params=None):
    torch.manual_seed(0)
    return create_method(name, create_model("starft-tiny-vit"), Task(CLASSES, TEMPLATES), params)


@pytest.mark.parametrize(
    "name, params",
    [
        ("robustvit", {}),
        ("cft", {}),
        ("cft", {"masks": "parts"}),
        ("robustvit", {"base": "flyp", "regularizer_weight": 5.0}),
    ],
)
def test_one_step_lowers_the_alignment_loss(name, params):
    method = _make(name, params)
    method.train()
    data = _batch()
    info = StepInfo(0, 0, 1, 1, seeded_generator(0, 0))
    optimizer = build_optimizer(method.trainable_named_parameters(), OptimConfig(lr=3e-3))
    before = method(data, info)
    before["loss"].backward()
    optimizer.step()
    optimizer.zero_grad()
    after = method(data, info)
    assert torch.isfinite(before["loss"])
    assert after["alignment"].item() < before["alignment"].item()


def test_released_mode_trains_the_image_tower_only():
    method = _make("cft")
    trainable = {id(p) for _, p in method.trainable_named_parameters()}
    image = {id(p) for p in method.model.image_tower().parameters()}
    assert trainable == image
    assert not method.model.logit_scale.requires_grad


def test_mask_errors_are_one_line():
    method = _make("robustvit")
    info = StepInfo(0, 0, 1, 1, seeded_generator(0, 0))
    data = _batch()
    del data["mask"]
    with pytest.raises(StarftError, match="no 'mask'"):
        method(data, info)
    data = _batch()
    data["mask"] = data["mask"][:, :16]
    with pytest.raises(StarftError, match=r"\[B, H, W\]"):
        method(data, info)
    with pytest.raises(StarftError, match="target=pred needs base=none"):
        _make("cft", {"base": "flyp", "target": "pred"})
    data = _batch()
    del data["parts"]
    with pytest.raises(StarftError, match="parts"):
        _make("cft", {"masks": "parts"})(data, info)
