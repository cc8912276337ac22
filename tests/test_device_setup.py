"""Per-device speed settings: channels_last CNN towers, fused AdamW, opt-in torch.compile."""

from __future__ import annotations

import copy

import pytest
import torch

from starft.config import OptimConfig, load_train_config
from starft.methods import Task, create_method
from starft.models import create_model
from starft.train.device_setup import (
    clip_models,
    has_batch_norm,
    is_convolutional,
    prepare_for_device,
)
from starft.train.optim import build_optimizer


def _images(model, n=4):
    size = model.image_size
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(0))


def test_resnet_towers_go_channels_last_with_the_same_features():
    torch.manual_seed(0)
    model = create_model("starft-tiny-rn").eval()
    reference = copy.deepcopy(model)
    done = prepare_for_device(model, torch.device("cpu"), channels_last=True)
    assert done == ["starft-tiny-rn: image tower in channels_last"]
    conv = next(m for m in model.image_tower().modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    images = _images(model)
    with torch.no_grad():
        assert torch.allclose(model.encode_image(images), reference.encode_image(images), atol=1e-5)
    # The state dict keeps its names, so checkpoints and exports are unchanged.
    assert model.state_dict().keys() == reference.state_dict().keys()


def test_vit_towers_and_the_cpu_default_change_nothing():
    vit = create_model("starft-tiny-vit")
    assert not is_convolutional(vit.image_tower())
    assert prepare_for_device(vit, torch.device("cpu"), channels_last=True) == []
    rn = create_model("starft-tiny-rn")
    assert is_convolutional(rn.image_tower())
    assert prepare_for_device(rn, torch.device("cpu")) == []  # channels_last only on CUDA


def test_every_model_of_a_method_is_prepared_teachers_included():
    model = create_model("starft-tiny-rn")
    method = create_method("starft", model, Task(["dog", "cat"], ["a photo of a {}."]), {})
    models = clip_models(method)
    assert len(models) == 2 and models[0] is model  # the trained model and its frozen teacher
    assert len(prepare_for_device(method, torch.device("cpu"), channels_last=True)) == 2
    assert has_batch_norm(method) and not has_batch_norm(create_model("starft-tiny-vit"))


def test_adamw_is_fused_on_cuda_only():
    params = [("w", torch.nn.Parameter(torch.randn(3, 3)))]
    assert build_optimizer(params, OptimConfig(), torch.device("cuda")).defaults["fused"] is True
    assert not build_optimizer(params, OptimConfig(), torch.device("cpu")).defaults["fused"]
    assert not build_optimizer(params, OptimConfig()).defaults["fused"]


def test_compile_is_an_opt_in_config_field():
    assert load_train_config(None, []).compile is False
    assert load_train_config(None, ["compile=true"]).compile is True


@pytest.mark.slow
def test_compiled_image_tower_equals_eager_on_cpu():
    torch.manual_seed(0)
    eager = create_model("starft-tiny-vit")
    compiled = copy.deepcopy(eager)
    assert prepare_for_device(compiled, torch.device("cpu"), compile=True) == [
        "starft-tiny-vit: image tower compiled (torch.compile)"
    ]
    images = _images(eager, 8)
    outs = []
    for model in (eager, compiled):
        features = model.encode_image(images, normalize=True)
        features.square().sum().backward()
        grads = {n: p.grad for n, p in model.image_tower().named_parameters()}
        outs.append((features.detach(), grads))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-4)
    for name, grad in outs[0][1].items():
        assert torch.allclose(grad, outs[1][1][name], atol=1e-4, rtol=1e-3), name
    assert compiled.state_dict().keys() == eager.state_dict().keys()
