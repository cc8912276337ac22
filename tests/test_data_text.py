"""Caption templates, StarFT descriptor pools, spurious captions and the caption sampler."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from starft.data import (
    CaptionSampler,
    class_caption,
    get_templates,
    list_pools,
    list_template_sets,
    load_pool,
    random_suffix_pool,
    spurious_caption,
)
from starft.errors import StarftError

# ----------------------------------------------------------------------------- templates


def test_template_sets() -> None:
    assert {"simple", "openai_imagenet", "simple_imagenet"} <= set(list_template_sets())
    assert get_templates("simple") == ["a photo of a {}."]
    openai = get_templates("openai_imagenet")
    assert len(openai) == 80 and len(set(openai)) == 80
    assert openai[0] == "a bad photo of a {}." and "a photo of a {}." in openai
    assert len(get_templates("simple_imagenet")) == 7
    openai.append("mutated {}.")  # callers get a copy, not the cached data
    assert len(get_templates("openai_imagenet")) == 80


@pytest.mark.parametrize(
    ("name", "attribute"),
    [
        ("openai_imagenet", "OPENAI_IMAGENET_TEMPLATES"),
        ("simple_imagenet", "SIMPLE_IMAGENET_TEMPLATES"),
    ],
)
def test_template_sets_match_open_clip(name: str, attribute: str) -> None:
    """The JSON was written from open_clip once; this guards against it drifting or being edited."""
    metadata = pytest.importorskip("open_clip.zero_shot_metadata")
    assert get_templates(name) == [template("{}") for template in getattr(metadata, attribute)]


def test_templates_from_list_and_files(tmp_path: Path) -> None:
    assert get_templates(("a {}.", "the {}!")) == ["a {}.", "the {}!"]
    (tmp_path / "t.json").write_text(json.dumps(["x {}.", "y {}."]), encoding="utf-8")
    assert get_templates(str(tmp_path / "t.json")) == ["x {}.", "y {}."]
    (tmp_path / "t.txt").write_text("# mine\nx {}.\n\n  y {}.  \n", encoding="utf-8")
    assert get_templates(tmp_path / "t.txt") == ["x {}.", "y {}."]


@pytest.mark.parametrize(
    ("templates", "bad"),
    [
        (["a {}.", "no slot"], "'no slot'"),
        (["{} and {}"], "'{} and {}'"),
        (["a {0}."], "'a {0}.'"),
        (["a {} {"], "'a {} {'"),
        (["a {}.", 3], "3"),
        ([], "empty"),
    ],
)
def test_template_validation_names_offender(templates: list, bad: str) -> None:
    with pytest.raises(StarftError) as info:
        get_templates(templates)
    assert bad in str(info.value)


def test_template_errors_for_names_and_files(tmp_path: Path) -> None:
    with pytest.raises(StarftError, match=r"unknown template set 'fancy' \(known: .*simple"):
        get_templates("fancy")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(["ok {}.", "broken"]), encoding="utf-8")
    with pytest.raises(StarftError, match=r"bad\.json'.*'broken'"):
        get_templates(bad)
    (tmp_path / "obj.json").write_text("{}", encoding="utf-8")
    with pytest.raises(StarftError, match=r"obj\.json' must hold a JSON list"):
        get_templates(tmp_path / "obj.json")


# ----------------------------------------------------------------------------- pools


def test_released_pool_sizes() -> None:
    assert list_pools()[:4] == ["background", "texture", "resolution", "all"]
    assert list_pools()[4:] == [
        "sandbox_scene",
        "sandbox_texture",
        "sandbox_quality",
        "sandbox_all",
    ]
    sizes = {name: len(load_pool(name)) for name in ("background", "texture", "resolution")}
    assert sizes == {"background": 58, "texture": 54, "resolution": 20}
    everything = load_pool("all")
    parts = load_pool("background") + load_pool("texture") + load_pool("resolution")
    assert everything == list(dict.fromkeys(parts)) and len(everything) == 132
    assert load_pool("background")[1] == "{} surrounded by flowers."


@pytest.mark.parametrize(
    ("descriptor", "caption", "expected"),
    [
        (
            "{} surrounded by flowers.",
            "a photo of a tench.",
            "a photo of a tench surrounded by flowers.",
        ),
        ("blurry {}.", "a photo of a tench.", "blurry a photo of a tench."),
        ("{} at night.", "a photo of a tench. ", "a photo of a tench at night."),
        ("{} at night.", "a tench..", "a tench. at night."),
        ("{} at night.", "no period", "no period at night."),
    ],
)
def test_spurious_caption(descriptor: str, caption: str, expected: str) -> None:
    assert spurious_caption(descriptor, caption) == expected


def test_custom_pool_files(tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(["{} in space.", "{} underwater.", "{} in space."]))
    assert load_pool(listed) == ["{} in space.", "{} underwater."]
    keyed = tmp_path / "keyed.json"
    keyed.write_text(json.dumps({"_about": "x", "a": ["{} a."], "b": ["{} b.", "{} c."]}))
    assert load_pool(str(keyed)) == ["{} a.", "{} b.", "{} c."]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (["{} fine.", "no slot here"], "'no slot here'"),
        ({"a": ["{} {}."]}, "'{} {}.'"),
        ({"a": "{} not a list."}, "key 'a' must hold a list"),
        ([], "empty"),
        ({"_about": "only a comment"}, "empty"),
        ("just a string", "must hold a JSON list"),
    ],
)
def test_bad_pool_files(tmp_path: Path, content: object, expected: str) -> None:
    path = tmp_path / "mypool.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(StarftError) as info:
        load_pool(path)
    assert "mypool.json" in str(info.value) and expected in str(info.value)


def test_unknown_pool_and_invalid_json(tmp_path: Path) -> None:
    with pytest.raises(StarftError, match=r"unknown descriptor pool 'weather' \(known: background"):
        load_pool("weather")
    (tmp_path / "p.json").write_text("[oops", encoding="utf-8")
    with pytest.raises(StarftError, match=r"p\.json' is not valid JSON"):
        load_pool(tmp_path / "p.json")


def test_random_suffix_pool() -> None:
    words = ["alpha", "beta", "gamma", "delta", "eps"]
    pool = random_suffix_pool(10, words, seed=1)
    assert pool == random_suffix_pool(10, words, seed=1)
    assert pool != random_suffix_pool(10, words, seed=2)
    assert len(pool) == 10
    for descriptor in pool:
        assert descriptor.startswith("{} ") and descriptor.endswith(".")
        assert len(descriptor[3:-1].split()) == 4 and set(descriptor[3:-1].split()) <= set(words)
    assert spurious_caption(pool[0], "a tench.").startswith("a tench ")
    assert len(random_suffix_pool(3, words, num_words=2)[0].split()) == 3
    with pytest.raises(StarftError, match="word list is empty"):
        random_suffix_pool(3, [])
    with pytest.raises(StarftError, match="brace"):
        random_suffix_pool(3, ["ok", "{bad}"])


# ----------------------------------------------------------------------------- captions


def test_class_caption() -> None:
    assert class_caption("a photo of a {}.", "tench") == "a photo of a tench."
    assert class_caption("a {}.", "weird {name}") == "a weird {name}."


def test_caption_sampler_random_is_seeded() -> None:
    sampler = CaptionSampler(["cat", "dog"], "openai_imagenet")
    labels = [0, 1, 1, 0, 1] * 4
    first = sampler.sample(labels, torch.Generator().manual_seed(0))
    assert first == sampler.sample(labels, torch.Generator().manual_seed(0))
    assert first != sampler.sample(labels, torch.Generator().manual_seed(1))
    assert len(set(first)) > 5  # templates really vary per sample
    for label, caption in zip(labels, first):
        assert caption in sampler.all_captions(label)
    assert sampler.sample(torch.tensor([1]), torch.Generator())[0].count("dog") == 1


def test_caption_sampler_uniform_over_templates() -> None:
    sampler = CaptionSampler(["x"], ["a {}.", "b {}.", "c {}.", "d {}."])
    captions = sampler.sample([0] * 4000, torch.Generator().manual_seed(0))
    counts = [captions.count(caption) for caption in sampler.all_captions(0)]
    assert min(counts) > 900 and max(counts) < 1100


def test_caption_sampler_fixed_and_validation() -> None:
    sampler = CaptionSampler(["cat", "dog"], ["a {}.", "the {}!"], mode="fixed", template_index=1)
    assert sampler.sample([0, 1], torch.Generator()) == ["the cat!", "the dog!"]
    assert sampler.all_captions(1) == ["a dog.", "the dog!"]
    with pytest.raises(StarftError, match="caption mode 'shuffle'"):
        CaptionSampler(["cat"], "simple", mode="shuffle")
    with pytest.raises(StarftError, match="template_index 3 is out of range for 2"):
        CaptionSampler(["cat"], ["a {}.", "b {}."], mode="fixed", template_index=3)
    with pytest.raises(StarftError, match="label 2 is out of range for 2 classes"):
        sampler.sample([2], torch.Generator())
