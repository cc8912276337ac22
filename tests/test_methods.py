"""Methods: registry-wide step tests, StarFT's exact speed-ups, schedules and ablation switches."""

from __future__ import annotations

import pytest
import torch

from starft.config import OptimConfig
from starft.data import load_pool
from starft.errors import StarftError
from starft.methods import METHODS, StepInfo, Task, create_method, method_defaults
from starft.models import create_model
from starft.train.optim import build_optimizer
from starft.train.sampling import seeded_generator

CLASSES = ["dog", "cat", "fish", "bird"]
TEMPLATES = ["a photo of a {}.", "a sketch of a {}.", "a painting of the {}."]


def make(name, params=None, seed=0):
    torch.manual_seed(seed)
    model = create_model("starft-tiny-vit")
    return create_method(name, model, Task(CLASSES, TEMPLATES), params)


def move_student(method, scale=0.05):
    """Move the trained model away from the frozen teacher, identically every time.

    At step 0 the student *is* the zero-shot model, so every term that compares them (the Star
    KL) is rounding noise (~1e-8) and a comparison of such terms decides on noise.
    """
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in method.model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))


def batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n, 32, 32)
    mask[:, 8:24, 8:24] = 1  # relevance-guided methods (robustvit, cft) read a foreground mask
    return {
        "image": torch.randn(n, 3, 32, 32, generator=g),
        "label": torch.tensor([i % len(CLASSES) for i in range(n)]),
        "mask": mask,
        # group-robust methods (upsampled_ft, vl_gdro) read class x feature group ids
        "group": torch.tensor([2 * (i % len(CLASSES)) + (i // len(CLASSES)) % 2 for i in range(n)]),
    }


def step_info(step=0, epoch=0, steps_per_epoch=10, total=30):
    return StepInfo(step, epoch, steps_per_epoch, total, seeded_generator(0, step))


@pytest.mark.parametrize("name", METHODS.names())
def test_one_step_reduces_the_loss_on_a_fixed_batch(name):
    method = make(name)
    method.train()
    # A small step, so the first-order decrease dominates: terms anchored at the starting model
    # (CaRot's self-distillation, CAR-FT's and Lipsum-FT's regularisers) begin at their minimum
    # and grow with the step, by more than the fit improves at lr 1e-3 on the random tiny model.
    optimizer = build_optimizer(method.trainable_named_parameters(), OptimConfig(lr=1e-4))
    data = batch()
    before = method(data, step_info())["loss"]
    before.backward()
    optimizer.step()
    after = method(data, step_info())["loss"]
    assert torch.isfinite(before) and after.item() < before.item()


@pytest.mark.parametrize("name", METHODS.names())
def test_defaults_and_unknown_parameters(name):
    assert isinstance(method_defaults(name), dict)
    with pytest.raises(StarftError, match=r"method\.no_such_option: unknown field"):
        make(name, {"no_such_option": 1})


@pytest.mark.parametrize("name", METHODS.names())
def test_classifier_and_export(name, tmp_path):
    method = make(name)
    logits = method.classifier()(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, len(CLASSES))
    out = method.export(tmp_path / "w")
    reloaded = create_model(str(out))
    assert torch.equal(reloaded.logit_scale, method.model.logit_scale)


def test_teacher_is_frozen_and_not_trained():
    method = make("starft")
    trainable = {id(p) for _, p in method.trainable_named_parameters()}
    assert all(id(p) not in trainable for p in method.teacher.parameters())
    assert all(not p.requires_grad for p in method.teacher.parameters())
    method.train()
    assert not method.teacher.model.training


def test_cached_teacher_text_equals_naive_computation():
    cached = make("starft", {"teacher_text_cache": True, "decay": "none"})
    naive = make("starft", {"teacher_text_cache": False, "decay": "none"})
    move_student(cached)
    move_student(naive)
    for step in range(4):  # later steps hit the cache
        info_a, info_b = step_info(step), step_info(step)
        data = batch(seed=step)
        a, b = cached(data, info_a), naive(data, info_b)
        assert a["star"].item() > 1e-3  # a real KL, far above the rounding noise
        for key in ("loss", "contrastive", "star"):
            assert torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), key
    assert cached.teacher.num_cached > 0 and naive.teacher.num_cached == 0
    captions = list(cached.teacher._rows)
    direct = naive.teacher.text_features(captions)
    assert torch.allclose(cached.teacher.text_features(captions), direct, atol=1e-6)


def test_star_term_equals_a_naive_step_without_any_speed_up():
    """Dedupe + trimmed text tower + teacher table + inference mode == the textbook computation."""
    from starft.losses import clip_contrastive_loss, star_regularization

    method = make("starft", {"decay": "none", "lambda_star": 0.7})
    move_student(method)
    data = batch(n=8)
    out = method(data, step_info())
    # Re-draw the same captions, then compute everything the slow way.
    info = step_info()
    captions = method.class_captions(data, info)
    spurious = method.spurious_captions(captions, info)
    model, teacher = method.model, method.teacher.model
    full = model.model  # open_clip module: full-context text tower, one caption per sample
    x = torch.nn.functional.normalize(full.encode_image(data["image"]), dim=-1)
    y = torch.nn.functional.normalize(full.encode_text(model.tokenize(captions)), dim=-1)
    w = torch.nn.functional.normalize(full.encode_text(model.tokenize(spurious)), dim=-1)
    with torch.no_grad():
        x0 = torch.nn.functional.normalize(teacher.model.encode_image(data["image"]), dim=-1)
        w0 = teacher.model.encode_text(model.tokenize(spurious))
        w0 = torch.nn.functional.normalize(w0, dim=-1)
    s0 = teacher.model.logit_scale.exp()
    contrastive = clip_contrastive_loss(x, y, full.logit_scale.exp())
    star = star_regularization(x, w, x0, w0, data["label"], s0)
    assert out["star"].item() > 1e-3
    assert torch.allclose(out["contrastive"], contrastive, atol=1e-5)
    assert torch.allclose(out["star"], star, rtol=1e-5, atol=1e-6)
    assert torch.allclose(out["loss"], contrastive + 0.7 * star, atol=1e-5)


def test_lambda_decay_schedules():
    per_epoch = make("starft", {"decay": "epoch", "lambda_star": 0.5})
    per_step = make("starft", {"decay": "step", "lambda_star": 0.5})
    constant = make("starft", {"decay": "none", "lambda_star": 0.5})
    # 3 epochs of 10 steps: λ_e = 0.5 (1 - (e + 1) / 3)
    assert per_epoch.lambda_at(step_info(0, 0)) == pytest.approx(0.5 * 2 / 3)
    assert per_epoch.lambda_at(step_info(15, 1)) == pytest.approx(0.5 / 3)
    assert per_epoch.lambda_at(step_info(29, 2)) == 0.0
    assert per_step.lambda_at(step_info(0, 0)) == pytest.approx(0.5 * 29 / 30)
    assert per_step.lambda_at(step_info(29, 2)) == pytest.approx(0.0)
    assert constant.lambda_at(step_info(29, 2)) == 0.5


def test_auto_decay_is_per_epoch_for_several_epochs_and_per_step_for_one():
    auto = make("starft", {"lambda_star": 0.5})
    assert auto.config.decay == "auto"
    # 3 epochs of 10 steps: the released per-epoch schedule
    assert auto.lambda_at(step_info(0, 0)) == pytest.approx(0.5 * 2 / 3)
    assert auto.decay_mode(step_info(0, 0)) == "epoch"
    # 1 epoch of 10 steps: per-epoch decay would make λ 0 throughout (plain FLYP); auto decays
    # per step instead, so the Star term is active for all but the last step.
    one = step_info(0, 0, steps_per_epoch=10, total=10)
    assert auto.decay_mode(one) == "step"
    assert auto.lambda_at(one) == pytest.approx(0.5 * 9 / 10)
    out = auto(batch(), one)
    assert "star" in out and out["lambda_star"].item() > 0


def test_released_epoch_decay_on_a_one_epoch_run_warns():
    method = make("starft", {"decay": "epoch"})
    with pytest.warns(UserWarning, match="decay=step"):
        assert method.lambda_at(step_info(0, 0, steps_per_epoch=10, total=10)) == 0.0


def test_zero_lambda_skips_the_teacher_but_keeps_the_contrastive_loss():
    method = make("starft", {"decay": "epoch"})
    out = method(batch(), step_info(29, 2))  # last epoch: λ = 0
    assert "star" not in out and method.teacher.num_cached == 0
    assert torch.equal(out["loss"], out["contrastive"])


def test_suffix_modes_build_the_expected_captions():
    clean = ["a photo of a dog.", "a photo of a cat."]
    spurious = make("starft", {"suffix": "spurious", "pool": "texture"})
    pool = load_pool("texture")
    made = spurious.spurious_captions(clean, step_info())
    assert all(any(m == d.format(c[:-1]) for d in pool) for m, c in zip(made, clean))
    none = make("starft", {"suffix": "none"})
    assert none.spurious_captions(clean, step_info()) == clean
    random_suffix = make("starft", {"suffix": "random", "random_suffix_words": 3})
    made = random_suffix.spurious_captions(clean, step_info())
    for m, c in zip(made, clean):
        assert m.startswith(c[:-1] + " ") and m.endswith(".")
        assert len(m[len(c) - 1 :].split()) == 3
    assert len(random_suffix.descriptors) == len(load_pool("background"))


def test_mask_switch_changes_the_star_term():
    """With the student moved off the teacher, masking same-class pairs changes the KL by far
    more than rounding (at step 0 both terms would be ~1e-8 noise)."""
    on = make("starft", {"mask_same_class": True, "decay": "none"})
    off = make("starft", {"mask_same_class": False, "decay": "none"})
    move_student(on)
    move_student(off)
    data = batch()
    a, b = on(data, step_info()), off(data, step_info())
    assert torch.equal(a["contrastive"], b["contrastive"])  # same model, same computation
    assert min(a["star"].item(), b["star"].item()) > 1e-3
    assert abs(a["star"].item() - b["star"].item()) > 0.05 * max(a["star"].item(), b["star"].item())


def test_custom_pool_file(tmp_path):
    pool = tmp_path / "pool.json"
    pool.write_text('["{} under water.", "{} in the dark."]')
    method = make("starft", {"pool": str(pool)})
    assert method.descriptors == ["{} under water.", "{} in the dark."]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"suffix": "bogus"}, "method.suffix"), ({"decay": "bogus"}, "method.decay")],
)
def test_bad_ablation_values_are_named(params, field):
    with pytest.raises(StarftError, match=field):
        make("starft", params)


def test_flyp_templates_random_vs_fixed():
    rand = make("flyp", {"template_mode": "random"})
    fixed = make("flyp", {"template_mode": "fixed", "template_index": 1})
    data = batch(n=12)
    drawn = rand.class_captions(data, step_info())
    assert len({c.split(" of ")[0] for c in drawn}) > 1
    assert all(c.startswith("a sketch of a ") for c in fixed.class_captions(data, step_info()))


def test_dataset_captions_option():
    method = make("flyp", {"dataset_captions": True})
    data = {**batch(n=2), "caption": ["first caption.", "second caption."]}
    assert method.class_captions(data, step_info()) == ["first caption.", "second caption."]
    with pytest.raises(StarftError, match="no caption column"):
        method.class_captions(batch(n=2), step_info())


def test_step_randint_slices_the_global_draw():
    whole = StepInfo(0, 0, 1, 1, seeded_generator(5, 0)).randint(10, 8)
    parts = [
        StepInfo(0, 0, 1, 1, seeded_generator(5, 0), rank=r, world_size=2).randint(10, 4)
        for r in range(2)
    ]
    assert parts[0] + parts[1] == whole


def test_ft_starts_at_zero_shot_and_its_head_round_trips(tmp_path):
    from starft.eval import evaluate_model
    from starft.models import ZeroShotClassifier, build_zeroshot_head
    from starft.models.heads import load_head

    method = make("ft", {"label_smoothing": 0.1})
    images = batch()["image"]
    zeroshot = ZeroShotClassifier(
        method.model, build_zeroshot_head(method.model, CLASSES, TEMPLATES)
    )
    with torch.no_grad():
        assert torch.allclose(method.classifier()(images), zeroshot(images), atol=1e-4)
    trained = {n for n, _ in method.trainable_named_parameters()}
    assert trained and all(n.startswith(("model.model.visual.", "head.")) for n in trained)
    out = method.export(tmp_path / "ft")
    head, classnames = load_head(out)
    assert classnames == CLASSES and torch.equal(head.weight, method.head.weight)
    from starft.data import SyntheticDataset

    data = SyntheticDataset(4, 8, classnames=CLASSES, transform=method.model.preprocess_val)
    reloaded = create_model(str(out))
    with_head, _, _ = evaluate_model(reloaded, data, linear_head=(head, classnames))
    direct, _, _ = evaluate_model(method.model, data, linear_head=(method.head, CLASSES))
    assert with_head["top1"] == direct["top1"] and with_head["nll"] == pytest.approx(direct["nll"])
