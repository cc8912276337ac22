"""The shipped `sandbox-clip` checkpoint: loadable by name, and its zero-shot accuracy floor.

The targets (issue 3) are shape >= 0.85, colour >= 0.95, scene >= 0.95, style >= 0.90 on
balanced held-out sets. Here each attribute is measured on 200 images (a few seconds), so each
floor sits about three standard errors below its target: a checkpoint that meets the targets
passes with near certainty, one that is clearly worse fails.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch

from starft.models import MODELS, create_model
from starft.sandbox.pretrain import ATTRIBUTES, zeroshot_accuracy

FLOORS = {"shape": 0.78, "colour": 0.90, "scene": 0.90, "style": 0.84}


@pytest.fixture(scope="module")
def sandbox_clip():
    return create_model("sandbox-clip")


def test_sandbox_clip_is_registered_and_shipped_small():
    spec = MODELS.get("sandbox-clip")
    assert spec.arch == "starft-sandbox-rn" and spec.weights is not None
    path = Path(str(resources.files("starft") / "resources" / spec.weights))
    assert path.is_file() and path.stat().st_size <= 25 * 10**6


def test_sandbox_clip_weights_differ_from_random_initialisation(sandbox_clip):
    torch.manual_seed(0)
    random = create_model("starft-sandbox-rn")
    trained = dict(sandbox_clip.model.state_dict())
    changed = [k for k, v in random.model.state_dict().items() if not torch.equal(v, trained[k])]
    assert len(changed) > 0.9 * len(trained)


def test_sandbox_clip_zero_shot_accuracy_floor(sandbox_clip):
    # Seed 300 is none of the pretraining (0), model-selection (100) or report (200) seeds.
    accuracies = zeroshot_accuracy(sandbox_clip, n=200, seed=300)
    assert set(accuracies) == set(ATTRIBUTES)
    for attribute, floor in FLOORS.items():
        assert accuracies[attribute] >= floor, (attribute, accuracies)
