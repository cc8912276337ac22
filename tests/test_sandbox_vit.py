"""The sandbox ViT: its architecture, the locked-text pretraining options it is made with."""

from __future__ import annotations

import pytest
import torch

from starft.config import OptimConfig, load_train_config
from starft.errors import StarftError
from starft.methods import StepInfo, Task, create_method
from starft.models import create_model
from starft.sandbox.pretrain import RECIPES, recipe_path
from starft.train.optim import build_optimizer
from starft.train.sampling import seeded_generator


def test_sandbox_vit_architecture_has_an_8x8_token_grid():
    model = create_model("starft-sandbox-vit")
    visual = model.model.visual
    assert visual.grid_size == (8, 8)
    features = model.encode_image(torch.randn(2, 3, 64, 64), normalize=True)
    assert features.shape == (2, model.embed_dim)


def test_load_text_tower_copies_every_text_weight_and_refuses_other_text_configs():
    source = create_model("sandbox-clip")
    torch.manual_seed(0)
    target = create_model("starft-sandbox-vit")
    visual_before = {k: v.clone() for k, v in target.model.visual.state_dict().items()}
    target.load_text_tower(source)
    theirs = dict(source.named_parameters())
    assert target.text_tower_named_parameters()
    for name, param in target.text_tower_named_parameters():
        assert torch.equal(param, theirs[name]), name
    assert torch.equal(target.logit_scale, source.logit_scale)
    for name, value in target.model.visual.state_dict().items():
        assert torch.equal(value, visual_before[name]), name  # the image tower is untouched
    with pytest.raises(StarftError, match="text towers differ"):
        create_model("starft-tiny-vit").load_text_tower(source)


def test_freeze_text_trains_the_image_tower_and_the_scale_only():
    torch.manual_seed(0)
    model = create_model("starft-tiny-vit")
    method = create_method(
        "flyp", model, Task(["dog", "cat"], ["a photo of a {}."]), {"freeze_text": True}
    )
    text_names = {f"model.{n}" for n, _ in model.text_tower_named_parameters()}
    trainable = {n for n, _ in method.trainable_named_parameters()}
    assert text_names and not (text_names & trainable)
    assert "model.model.logit_scale" in trainable
    assert any(n.startswith("model.model.visual.") for n in trainable)

    before = {n: p.detach().clone() for n, p in method.named_parameters()}
    optimizer = build_optimizer(method.trainable_named_parameters(), OptimConfig(lr=1e-2))
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(4, 3, 32, 32, generator=g), "label": torch.tensor([0, 1, 0, 1])}
    out = method(batch, StepInfo(0, 0, 1, 1, seeded_generator(0, 0)))
    out["loss"].backward()
    optimizer.step()
    for name, param in method.named_parameters():
        changed = not torch.equal(param, before[name])
        if name in text_names:
            assert not changed and param.grad is None, name
    assert any(not torch.equal(p, before[n]) for n, p in method.named_parameters() if "visual" in n)


@pytest.mark.parametrize("model", sorted(RECIPES))
def test_every_pretraining_recipe_loads(model):
    config = load_train_config(recipe_path(model))
    assert config.method["name"] in ("flyp", "flyp_distill")


def test_flyp_distill_term_is_the_mean_cosine_distance_to_the_named_teacher():
    torch.manual_seed(0)
    model = create_model("starft-sandbox-vit")
    method = create_method(
        "flyp_distill",
        model,
        Task(["star", "ring"], ["a photo of a {}."]),
        {"teacher": "starft-sandbox-rn", "distill_weight": 3.0},
    )
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    batch = {"image": images, "label": torch.tensor([0, 1, 0, 1])}
    out = method(batch, StepInfo(0, 0, 1, 1, seeded_generator(0, 0)))
    student = model.encode_image(images, normalize=True)
    teacher = method.teacher.model.encode_image(images, normalize=True)
    expected = (1 - torch.nn.functional.cosine_similarity(student, teacher)).mean()
    assert out["distill"].item() > 0.1  # two unrelated random towers: far from the noise floor
    assert torch.allclose(out["distill"], expected, rtol=1e-4)
    assert torch.allclose(out["loss"], out["contrastive"] + 3.0 * out["distill"], rtol=1e-5)
    trainable = {id(p) for _, p in method.trainable_named_parameters()}
    assert not any(id(p) in trainable for p in method.teacher.parameters())


def test_flyp_distill_without_a_teacher_starts_at_zero_distance():
    torch.manual_seed(0)
    method = create_method(
        "flyp_distill", create_model("starft-tiny-vit"), Task(["a", "b"], ["{}"])
    )
    batch = {"image": torch.randn(2, 3, 32, 32), "label": torch.tensor([0, 1])}
    out = method(batch, StepInfo(0, 0, 1, 1, seeded_generator(0, 0)))
    assert out["distill"].abs().item() < 1e-5  # the teacher is the model's own starting point


def test_flyp_distill_refuses_a_teacher_with_other_inputs():
    model = create_model("starft-tiny-vit")  # 32 px
    with pytest.raises(StarftError, match=r"method\.teacher 'starft-sandbox-rn'"):
        create_method(
            "flyp_distill", model, Task(["a", "b"], ["{}"]), {"teacher": "starft-sandbox-rn"}
        )


def test_flyp_distill_class_term_is_the_kl_between_zero_shot_class_distributions():
    torch.manual_seed(0)
    model = create_model("starft-sandbox-vit")
    task = Task(["star", "ring", "moon"], ["a photo of a {}.", "a {}."])
    method = create_method(
        "flyp_distill",
        model,
        task,
        {
            "teacher": "starft-sandbox-rn",
            "distill_weight": 2.0,
            "class_distill_weight": 5.0,
            "freeze_text": True,
        },
    )
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    batch = {"image": images, "label": torch.tensor([0, 1, 2, 0])}
    out = method(batch, StepInfo(0, 0, 1, 1, seeded_generator(0, 0)))

    def class_log_probs(clip, scale):
        captions = [t.format(c) for c in task.classnames for t in task.templates]
        text = clip.encode_text(clip.tokenize(captions), normalize=True).view(3, 2, -1)
        head = torch.nn.functional.normalize(text.mean(1), dim=-1)
        logits = scale * clip.encode_image(images, normalize=True) @ head.T
        return logits.log_softmax(-1)

    with torch.no_grad():
        student = class_log_probs(model, model.scale())
        teacher = class_log_probs(method.teacher.model, method.teacher.scale)
    expected = (teacher.exp() * (teacher - student)).sum(-1).mean()
    assert out["class_distill"].item() > 0.01  # unrelated towers: far from the noise floor
    assert torch.allclose(out["class_distill"], expected, rtol=1e-3)
    total = out["contrastive"] + 2.0 * out["distill"] + 5.0 * out["class_distill"]
    assert torch.allclose(out["loss"], total, rtol=1e-5)


def test_flyp_distill_class_term_needs_a_frozen_text_tower():
    with pytest.raises(StarftError, match=r"class_distill_weight > 0 needs method\.freeze_text"):
        create_method(
            "flyp_distill",
            create_model("starft-tiny-vit"),
            Task(["a", "b"], ["{}"]),
            {"class_distill_weight": 1.0},
        )
