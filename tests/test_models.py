"""Model protocol, factory, save/load round trips and zero-shot heads (tiny random models)."""

from __future__ import annotations

import open_clip
import pytest
import torch
import torch.nn.functional as F

from starft.errors import StarftError
from starft.models import MODELS, build_zeroshot_head, create_model, list_models, save_model

CAPTIONS = [
    "a photo of a dog.",
    "a photo of a very small cat sitting on a sunny beach next to the sea.",
    "x.",
]


@pytest.mark.parametrize("name", MODELS.names())
def test_registered_models_follow_the_protocol(name):
    torch.manual_seed(0)
    model = create_model(name)
    size = model.preprocess_cfg["size"]
    size = size if isinstance(size, int) else size[0]
    images = torch.randn(2, 3, size, size)
    tokens = model.tokenize(CAPTIONS)
    assert tokens.shape == (3, model.context_length)
    out = model(images=images, tokens=tokens)
    assert out["image_features"].shape == (2, model.embed_dim)
    assert out["text_features"].shape == (3, model.embed_dim)
    assert torch.allclose(out["image_features"].norm(dim=-1), torch.ones(2), atol=1e-5)
    assert model.encode_image(images, normalize=False).norm(dim=-1).ne(1).any()
    assert model.scale().item() == pytest.approx(model.logit_scale.exp().item())


def test_trimmed_text_tower_equals_full_context(tiny_model):
    tokens = tiny_model.tokenize(CAPTIONS)
    full = tiny_model.model.encode_text(tokens)
    trimmed = tiny_model.encode_text(tokens)
    assert torch.allclose(full, trimmed, atol=1e-5)


def test_trimmed_text_gradients_equal_full_context(tiny_model):
    tokens = tiny_model.tokenize(CAPTIONS)
    tiny_model.model.encode_text(tokens).square().sum().backward()
    full = [p.grad.clone() for p in tiny_model.parameters() if p.grad is not None]
    tiny_model.zero_grad()
    tiny_model.encode_text(tokens).square().sum().backward()
    trimmed = [p.grad.clone() for p in tiny_model.parameters() if p.grad is not None]
    assert len(full) == len(trimmed)
    for a, b in zip(full, trimmed):  # equal up to fp32 rounding (gradients reach ~200)
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def test_tokenize_caches_per_string(tiny_model):
    first = tiny_model.tokenize(["a b.", "c d."])
    assert set(tiny_model._token_cache) == {"a b.", "c d."}
    again = tiny_model.tokenize(["c d.", "a b.", "c d."])
    assert torch.equal(again[1], first[0]) and torch.equal(again[0], first[1])
    assert torch.equal(again[0], again[2])


def test_save_model_round_trips_through_every_loader(tiny_model, tmp_path):
    out = save_model(tiny_model, tmp_path / "saved")
    assert sorted(p.name for p in out.iterdir()) == [
        "open_clip_config.json",
        "open_clip_model.safetensors",
    ]
    tokens = tiny_model.tokenize(CAPTIONS)
    images = torch.randn(2, 3, 32, 32)
    want_text = tiny_model.model.encode_text(tokens)
    want_image = tiny_model.model.encode_image(images)
    reloaded = [
        create_model(str(out)).model,
        open_clip.create_model(f"local-dir:{out}"),
        open_clip.create_model(
            "starft-tiny-vit", pretrained=str(out / "open_clip_model.safetensors")
        ),
    ]
    for model in reloaded:
        assert torch.allclose(model.encode_text(tokens), want_text, atol=1e-6)
        assert torch.allclose(model.encode_image(images), want_image, atol=1e-6)


def test_save_model_replaces_an_existing_folder_atomically(tiny_model, tmp_path):
    target = tmp_path / "saved"
    save_model(tiny_model, target)
    with torch.no_grad():
        tiny_model.logit_scale.fill_(1.5)
    save_model(tiny_model, target)
    assert create_model(str(target)).logit_scale.item() == pytest.approx(1.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


def test_unknown_model_and_pretrained_are_one_line_errors(tmp_path):
    with pytest.raises(StarftError, match="unknown model 'no-such-model'"):
        create_model("no-such-model")
    with pytest.raises(StarftError, match="unknown pretrained tag 'nope' for 'ViT-B-16'"):
        create_model("ViT-B-16", pretrained="nope")
    with pytest.raises(StarftError, match="does not exist"):
        create_model("ViT-B-16", pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(StarftError, match=r"has no open_clip_config\.json"):
        create_model(f"local-dir:{tmp_path}")


def test_list_models_has_starft_and_open_clip_entries():
    names = [name for name, _ in list_models()]
    assert names[: len(MODELS)] == MODELS.names()
    assert "ViT-B-16" in names and "RN50" in names


@pytest.mark.parametrize("batch_size", [None, 4])
def test_zeroshot_head_matches_per_class_computation(tiny_model, batch_size):
    # Captions of very different lengths: batches are ordered by length across classes and
    # scattered back, each batch trimmed to its own longest caption.
    classnames = ["dog", "great white shark in the deep blue sea", "fish"]
    templates = ["a photo of a {}.", "a sketch of a {}.", "art of the {}.", "{}"]
    head = build_zeroshot_head(tiny_model, classnames, templates, batch_size=batch_size)
    assert head.shape == (3, tiny_model.embed_dim)
    with torch.no_grad():
        for row, name in zip(head, classnames):
            tokens = tiny_model.tokenize([t.format(name) for t in templates])
            per_template = tiny_model.model.encode_text(tokens)
            expected = F.normalize(F.normalize(per_template, dim=-1).mean(0), dim=-1)
            assert torch.allclose(row, expected, atol=1e-5)


def test_text_batch_size_depends_on_the_device():
    from starft.models.zeroshot import text_batch_size

    assert text_batch_size("cpu") < text_batch_size("cuda")
    assert text_batch_size(torch.device("cuda", 1)) == text_batch_size("cuda")
