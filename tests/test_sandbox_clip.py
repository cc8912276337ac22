"""The shipped sandbox checkpoints: loadable by name, small, and their zero-shot accuracy floors.

The targets are shape >= 0.85, colour >= 0.95, scene >= 0.95, style >= 0.90 on balanced held-out
sets, for both shipped models (`sandbox-clip`, the ResNet, and `sandbox-clip-vit`). Here each
attribute is measured on 200 images (a few seconds), so each floor sits about three standard
errors below its target: a checkpoint that meets the targets passes with near certainty, one that
is clearly worse fails.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch

from starft.models import MODELS, create_model
from starft.sandbox.pretrain import ATTRIBUTES, RECIPES, zeroshot_accuracy

FLOORS = {"shape": 0.78, "colour": 0.90, "scene": 0.90, "style": 0.84}
# shipped model -> its architecture (the randomly initialised starting point)
SHIPPED = {"sandbox-clip": "starft-sandbox-rn", "sandbox-clip-vit": "starft-sandbox-vit"}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request):
    return request.param, create_model(request.param)


def test_every_pretraining_recipe_names_a_shipped_model():
    assert set(RECIPES) == set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_sandbox_model_is_registered_and_shipped_small(name):
    spec = MODELS.get(name)
    assert spec.arch == SHIPPED[name] and spec.weights is not None
    assert Path(spec.weights).name == RECIPES[name][1]
    path = Path(str(resources.files("starft") / "resources" / spec.weights))
    assert path.is_file() and path.stat().st_size <= 25 * 10**6


def test_sandbox_model_weights_differ_from_random_initialisation(shipped):
    name, model = shipped
    torch.manual_seed(0)
    random = create_model(SHIPPED[name])
    trained = dict(model.model.state_dict())
    changed = [k for k, v in random.model.state_dict().items() if not torch.equal(v, trained[k])]
    assert len(changed) > 0.9 * len(trained)


def test_sandbox_model_zero_shot_accuracy_floor(shipped):
    # Seed 300 is none of the pretraining (0), model-selection (100) or report (200) seeds.
    name, model = shipped
    accuracies = zeroshot_accuracy(model, n=200, seed=300)
    assert set(accuracies) == set(ATTRIBUTES)
    for attribute, floor in FLOORS.items():
        assert accuracies[attribute] >= floor, (name, attribute, accuracies)
