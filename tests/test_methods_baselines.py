"""CAR-FT, CaRot and Lipsum-FT: each term against a naive computation, schedules, state, CLI.

The registry-wide tests of ``test_methods.py`` (one step, defaults, export) cover these methods
too; here each method's own pieces are checked: the context head, the random-token texts, the
EMA teacher and its schedule, resume exactness, and a sandbox run through the command line.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from starft.cli.main import main
from starft.config import OptimConfig, load_train_config
from starft.errors import StarftError
from starft.eval import load_result
from starft.losses import (
    context_kl,
    lipsum_energy_loss,
    orthogonality_penalty,
    self_distillation_loss,
)
from starft.methods import StepInfo, Task, create_method
from starft.methods.ema import ema_momentum
from starft.models import create_model
from starft.models.projections import text_projection, visual_projection
from starft.models.tokens import token_layout, tokens_from_ids
from starft.train import Trainer, fit
from starft.train.optim import build_optimizer
from starft.train.sampling import seeded_generator

CLASSES = ["dog", "cat", "fish", "bird"]
TEMPLATES = ["a photo of a {}.", "a sketch of a {}.", "a painting of the {}."]
BASELINES = ("carft", "carot", "lipsum")
REGULARISER = {"carft": "context_kl", "carot": "self_distillation", "lipsum": "energy_gap"}


def make(name, params=None, model="starft-tiny-vit", templates=TEMPLATES):
    torch.manual_seed(0)
    return create_method(name, create_model(model), Task(CLASSES, list(templates)), params)


def move_student(method, scale=0.05):
    """Move the trained model away from its (frozen or EMA) teacher, identically every time."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in method.model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))


def batch(n=8, seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(n, 3, size, size, generator=g),
        "label": torch.tensor([i % len(CLASSES) for i in range(n)]),
    }


def step_info(step=0, total=30, rank=0, world_size=1):
    return StepInfo(step, 0, 10, total, seeded_generator(0, step, 0), rank, world_size)


def image_features(clip, images):
    return F.normalize(clip.model.encode_image(images), dim=-1)


def test_ls_methods_lists_the_baselines(capsys):
    assert main(["ls", "methods"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert set(BASELINES) <= set(names)


@pytest.mark.parametrize("name", BASELINES)
def test_one_step_reduces_the_loss_with_the_regulariser_active(name):
    """With the student moved off its teacher the regulariser is > 0 and pulls it back."""
    method = make(name)
    move_student(method)
    method.train()
    optimizer = build_optimizer(method.trainable_named_parameters(), OptimConfig(lr=1e-4))
    data = batch()
    before = method(data, step_info())
    assert before[REGULARISER[name]].item() > 1e-3
    before["loss"].backward()
    optimizer.step()
    after = method(data, step_info())
    assert after["loss"].item() < before["loss"].item()


# -- CAR-FT -------------------------------------------------------------------------------------
def test_carft_context_head_and_kl_equal_a_naive_computation():
    method = make("carft", {"beta": 0.3})
    zero_shot = copy.deepcopy(method.model)
    # W_ctx[k]: normalised mean over classes of template k's normalised embeddings, one caption
    # at a time through the full-context text tower.
    rows = []
    for template in TEMPLATES:
        tokens = zero_shot.tokenize([template.format(c) for c in CLASSES])
        rows.append(F.normalize(zero_shot.model.encode_text(tokens), dim=-1).mean(dim=0))
    naive_contexts = F.normalize(torch.stack(rows), dim=-1)
    assert torch.allclose(method.context_weights, naive_contexts, atol=1e-6)

    move_student(method)
    data = batch()
    out = method(data, step_info())
    s0 = zero_shot.scale().item()
    with torch.no_grad():
        x, x0 = (
            image_features(method.model, data["image"]),
            image_features(zero_shot, data["image"]),
        )
        kl = context_kl(x, x0, naive_contexts, s0)
        ce = F.cross_entropy(method.head(x), data["label"])
    assert out["context_kl"].item() > 1e-3
    assert out["context_kl"].item() == pytest.approx(kl.item(), abs=1e-6)
    assert out["loss"].item() == pytest.approx(ce.item() + 0.3 * kl.item(), abs=1e-5)


def test_carft_context_templates_option_and_errors(tmp_path):
    contexts = tmp_path / "contexts.json"
    contexts.write_text('["a {} at night.", "a {} in the snow.", "a {} in a field.", "{}"]')
    method = make("carft", {"context_templates": str(contexts)}, templates=["a photo of a {}."])
    assert method.context_weights.shape == (4, method.model.embed_dim)
    with pytest.raises(StarftError, match="carft needs at least 2 context templates, got 1"):
        make("carft", templates=["a photo of a {}."])
    with pytest.raises(StarftError, match=r"method\.beta must be >= 0"):
        make("carft", {"beta": -1.0})


# -- Lipsum-FT ----------------------------------------------------------------------------------
def test_lipsum_random_texts_layout_and_draws():
    method = make("lipsum")
    layout = token_layout(method.model)
    assert (layout.sot, layout.eot, layout.num_regular) == (49406, 49407, 49406)
    tokens = method.random_tokens(step_info(3))
    assert tokens.shape == (80, method.model.context_length)
    assert (tokens[:, 0] == layout.sot).all() and (tokens[:, 9] == layout.eot).all()
    ids = tokens[:, 1:9]
    assert ids.min() >= 0 and ids.max() < layout.num_regular and len(ids.unique()) > 100
    assert (tokens[:, 10:] == 0).all()
    # Same texts on every rank and on a re-run of the step; fresh texts on the next step.
    assert torch.equal(tokens, method.random_tokens(step_info(3, rank=1, world_size=2)))
    assert torch.equal(tokens, method.random_tokens(step_info(3)))
    assert not torch.equal(tokens, method.random_tokens(step_info(4)))


def test_lipsum_energy_term_equals_a_naive_computation():
    method = make("lipsum", {"lambda_lipsum": 2.0, "num_texts": 5, "text_length": 3})
    zero_shot = copy.deepcopy(method.model)
    move_student(method)
    data = batch()
    out = method(data, step_info(7))
    tokens = method.random_tokens(step_info(7))
    assert tokens.shape[0] == 5 and (tokens[:, 4] == 49407).all()
    with torch.no_grad():
        texts = F.normalize(zero_shot.model.encode_text(tokens), dim=-1)  # full context
        x, x0 = (
            image_features(method.model, data["image"]),
            image_features(zero_shot, data["image"]),
        )
        energy = lipsum_energy_loss(x, x0, texts, zero_shot.scale().item())
        ce = F.cross_entropy(method.head(x), data["label"])
    assert out["energy_gap"].item() > 1e-3
    assert out["energy_gap"].item() == pytest.approx(energy.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(ce.item() + 2.0 * energy.item(), rel=1e-5)


def test_lipsum_bad_values_are_named():
    with pytest.raises(StarftError, match="do not fit the model's context length 48"):
        make("lipsum", {"text_length": 47})
    with pytest.raises(StarftError, match=r"method\.num_texts must be >= 1"):
        make("lipsum", {"num_texts": 0})
    layout = token_layout(make("lipsum").model)
    assert tokens_from_ids(layout, torch.tensor([[5, 6]]))[0, :5].tolist() == [
        49406,
        5,
        6,
        49407,
        0,
    ]


# -- CaRot --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["starft-tiny-vit", "starft-tiny-rn"])
def test_visual_projection_is_the_final_linear_map(model):
    clip = create_model(model)
    weight = visual_projection(clip)
    visual = clip.model.visual
    if model.endswith("rn"):  # ModifiedResNet: the attention pool's output projection
        assert weight.data_ptr() == visual.attnpool.c_proj.weight.data_ptr()
        assert weight.shape == (visual.attnpool.c_proj.in_features, clip.embed_dim)
    else:
        assert weight is visual.proj and weight.shape[1] == clip.embed_dim
    assert text_projection(clip).shape[1] == clip.embed_dim
    clip.model.visual = torch.nn.Linear(3, 3)
    with pytest.raises(StarftError, match=r"no linear projection .* \(Linear\)"):
        visual_projection(clip)


def test_carot_terms_equal_a_naive_computation():
    method = make("carot", {"template_mode": "fixed", "lambda_cross": 0.05})
    teacher = copy.deepcopy(method.model)
    move_student(method)
    data = batch()
    out = method(data, step_info())
    captions = method.class_captions(data, step_info())
    student = method.model
    with torch.no_grad():
        x = image_features(student, data["image"])
        y = F.normalize(student.model.encode_text(student.tokenize(captions)), dim=-1)
        xt = image_features(teacher, data["image"])
        yt = F.normalize(teacher.model.encode_text(teacher.tokenize(captions)), dim=-1)
        distill = self_distillation_loss(x, y, xt, yt, student.scale(), teacher.scale())
        orth = orthogonality_penalty(student.model.visual.proj)
        cross = torch.linalg.matrix_norm(
            student.model.visual.proj @ student.model.text_projection.t()
        )
    assert out["self_distillation"].item() == pytest.approx(distill.item(), rel=1e-5)
    assert out["orthogonality"].item() == pytest.approx(orth.item(), rel=1e-5)
    assert out["cross_projection"].item() == pytest.approx(cross.item(), rel=1e-5)
    expected = out["contrastive"] + 0.2 * orth + 1.5 * distill + 0.05 * cross
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(out) == {
        "loss",
        "contrastive",
        "orthogonality",
        "self_distillation",
        "cross_projection",
    }


def test_carot_without_self_distillation_has_no_teacher():
    method = make("carot", {"lambda_sd": 0.0, "lambda_oc": 0.0})
    out = method(batch(), step_info())
    assert method.teacher is None and set(out) == {"loss", "contrastive"}
    assert "ema_teacher" not in method.training_state()


def test_ema_momentum_schedule():
    # Release defaults: every 500 steps; 0.05 -> 0.9 linearly over the first 20% of 25000 steps.
    kwargs = {"every_steps": 500, "momentum": 0.9, "momentum_start": 0.05, "warmup_fraction": 0.2}
    assert ema_momentum(0, 25000, **kwargs) == pytest.approx(0.05)
    assert ema_momentum(500, 25000, **kwargs) == pytest.approx(0.05 + 0.85 * 500 / 5000)
    assert ema_momentum(4500, 25000, **kwargs) == pytest.approx(0.05 + 0.85 * 0.9)
    assert ema_momentum(5000, 25000, **kwargs) == pytest.approx(0.9)
    assert ema_momentum(501, 25000, **kwargs) is None
    assert ema_momentum(0, 25000, **{**kwargs, "every_steps": 0}) is None
    assert ema_momentum(3, 10, **{**kwargs, "every_steps": 1, "warmup_fraction": 0.0}) == 0.9


def test_ema_teacher_update_is_the_moving_average():
    method = make("carot", {"ema_every_steps": 2, "ema_momentum_start": 0.25})
    before = {k: v.clone() for k, v in method.teacher.model.state_dict().items()}
    move_student(method)
    student = {k: v.clone() for k, v in method.model.state_dict().items()}
    method.after_optimizer_step(step_info(1, total=10))  # 1 % 2 != 0: no update
    assert all(torch.equal(v, before[k]) for k, v in method.teacher.model.state_dict().items())
    method.after_optimizer_step(step_info(0, total=10))  # step 0: m = momentum_start = 0.25
    for key, value in method.teacher.model.state_dict().items():
        if value.is_floating_point():
            expected = 0.25 * before[key] + 0.75 * student[key]
            assert torch.allclose(value, expected, atol=1e-6), key
    assert not any(p.requires_grad for p in method.teacher.parameters())
    method.train()
    assert not method.teacher.model.training


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lambda_oc": -1.0}, "method.lambda_oc"),
        ({"ema_momentum": 1.5}, "method.ema_momentum"),
        ({"ema_every_steps": -1}, "method.ema_every_steps"),
    ],
)
def test_carot_bad_values_are_named(params, field):
    with pytest.raises(StarftError, match=field):
        make("carot", params)


class Crash(Exception):
    pass


def carot_config(tmp_path, name):
    return load_train_config(
        None,
        [
            "method.name=carot",
            "method.ema_every_steps=1",
            "data.dataset=synthetic",
            "data.train={num_classes: 4, num_samples: 48, seed: 0}",
            "data.batch_size=16",
            "optim.epochs=2",
            "optim.warmup_steps=1",
            "optim.lr=1e-3",
            "checkpoint_every_steps=1",
            "log.progress=false",
            "log.tensorboard=false",
            f"out_dir={tmp_path / name}",
        ],
    )


def test_carot_resume_restores_the_ema_teacher(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from starft.train.checkpoint import load_checkpoint

    full = fit(carot_config(tmp_path, "full"))
    original = Trainer._optimizer_step

    def crashing_step(self, *args):
        original(self, *args)
        if self.step == 4:  # mid-epoch 1 (3 steps per epoch)
            raise Crash

    monkeypatch.setattr(Trainer, "_optimizer_step", crashing_step)
    with pytest.raises(Crash):
        fit(carot_config(tmp_path, "resumed"))
    monkeypatch.setattr(Trainer, "_optimizer_step", original)
    state = load_checkpoint(tmp_path / "resumed/checkpoints/latest.pt")["method"]
    torch.manual_seed(0)  # what fit() does before creating the model
    initial = create_model("starft-tiny-vit").state_dict()
    teacher = state["ema_teacher"]
    assert max((teacher[k] - initial[k]).abs().max() for k in initial) > 1e-4  # it moved
    resumed = fit(carot_config(tmp_path, "resumed"), resume="auto")

    assert resumed.steps == full.steps == 6
    a = load_file(str(tmp_path / "full/final/open_clip_model.safetensors"))
    b = load_file(str(tmp_path / "resumed/final/open_clip_model.safetensors"))
    for key in a:  # bit-identical: the teacher came back from the checkpoint
        assert torch.equal(a[key], b[key]), key


# -- the command line on the sandbox ------------------------------------------------------------
@pytest.mark.parametrize("name", BASELINES)
def test_train_then_eval_on_the_sandbox(name, tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "train",
        "--model",
        "starft-sandbox-rn",
        "--method",
        name,
        "--dataset",
        "sandbox_train",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        str(run),
        "data.train={n: 32}",
        "optim.warmup_steps=1",
        "log.progress=false",
        "log.tensorboard=false",
    ]
    assert main(args) == 0
    assert (run / "final" / "classification_head.safetensors").is_file() == (name != "carot")
    results = tmp_path / "results"
    assert (
        main(
            ["eval", "--model", str(run), "--dataset", "sandbox_val", "--out", str(results), "n=16"]
        )
        == 0
    )
    (path,) = results.glob("*.json")
    result = load_result(path)
    assert result["method"] == name and result["n_samples"] == 16
    assert 0.0 <= result["metrics"]["top1"] <= 1.0
    capsys.readouterr()
