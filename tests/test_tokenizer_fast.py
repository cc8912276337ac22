"""The Rust CLIP BPE tokenizer gives open_clip's token ids on every string the project ships."""

from __future__ import annotations

import logging
import sys
from importlib import resources

import pytest
import torch

from starft.data.resources import read_json_resource
from starft.models.backends import fast_bpe
from starft.models.backends.fast_bpe import FastClipTokenizer, fast_clip_tokenizer, fast_path_ok

pytest.importorskip("tokenizers")

RESOURCE_FILES = sorted(
    str(path.relative_to(resources.files("starft") / "resources"))
    for path in (resources.files("starft") / "resources").rglob("*.json")
)


def _leaves(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaves(v)]
    if isinstance(value, list):
        return [s for v in value for s in _leaves(v)]
    return []


def shipped_strings() -> list[str]:
    """Every string in the shipped JSON resources (class names, templates, pools, sandbox
    vocabulary, ...), plus the captions built from them: each template of each template set with
    every 20th ImageNet class name and every other benchmark's class names, and each descriptor
    of each pool around captions."""
    strings = [s for name in RESOURCE_FILES for s in _leaves(read_json_resource(name))]
    templates = [
        t for k, v in read_json_resource("templates.json").items() if k[0] != "_" for t in v
    ]
    imagenet = read_json_resource("benchmarks/imagenet_classnames.json")["classnames"]
    others = [
        n
        for k, v in read_json_resource("benchmarks/classnames.json").items()
        if k[0] != "_"
        for n in v
    ]
    names = imagenet[::20] + others[::5]
    strings += [t.replace("{}", n) for t in templates for n in names]
    pools = [
        read_json_resource("starft_spurious_pools.json"),
        read_json_resource("sandbox/pools.json"),
    ]
    descriptors = [d for pool in pools for k, v in pool.items() if k[0] != "_" for d in v]
    captions = ["a photo of a tench", "a sketch of the Great White Shark", "itap of a 3d ring"]
    strings += [d.replace("{}", c) for d in descriptors for c in captions]
    return list(dict.fromkeys(strings))


@pytest.fixture()
def fresh_cache(monkeypatch):
    monkeypatch.setattr(fast_bpe, "_RUST", {})


def _slow(context_length: int = 77):
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


@pytest.mark.parametrize("context_length, every", [(77, 1), (32, 5)])
def test_rust_tokenizer_matches_open_clip_on_every_shipped_string(context_length, every):
    """Every string at CLIP's context; every 5th at the sandbox's 32 (truncation)."""
    slow = _slow(context_length)
    fast = fast_clip_tokenizer(slow)
    assert isinstance(fast, FastClipTokenizer)
    strings = shipped_strings()[::every]
    assert fast.rust(len(strings)) is not None
    fast_share = sum(map(fast_path_ok, strings)) / len(strings)
    assert fast_share > 0.9, fast_share  # the comparison really exercises the Rust path
    ours, theirs = fast(strings), slow(strings)
    differ = [s for s, a, b in zip(strings, ours, theirs) if not torch.equal(a, b)]
    assert not differ, differ[:5]
    print(f"{len(strings)} strings, {fast_share:.1%} on the Rust path, all ids equal")


def test_strings_off_the_fast_path_and_single_encodes_match():
    slow = _slow()
    fast = fast_clip_tokenizer(slow)
    fast.rust()
    tricky = [
        "café au lait",
        "a &amp; b",
        "tab\there",
        "line\nbreak",
        "<start_of_text> x",
        "Ünïcode",
    ]
    assert not any(map(fast_path_ok, tricky))
    assert torch.equal(fast(tricky), slow(tricky))
    for text in ["a photo of a TENCH.", "it's 3d", *tricky]:
        assert fast.encode(text) == slow.encode(text)
    assert fast.sot_token_id == slow.sot_token_id and fast.encoder is slow.encoder


def test_small_calls_use_the_slow_tokenizer_until_built(fresh_cache):
    fast = fast_clip_tokenizer(_slow())
    assert torch.equal(fast(["a photo of a dog."]), _slow()(["a photo of a dog."]))
    assert not fast_bpe._RUST  # nothing built for a short call
    fast(["a photo of a dog."] * fast_bpe.BUILD_AT)
    assert next(iter(fast_bpe._RUST.values())) is not None


def test_a_disagreeing_rust_tokenizer_falls_back_to_the_slow_one(fresh_cache, monkeypatch, caplog):
    real = fast_bpe._rust_ids

    def off_by_one(rust, texts, rows):
        return [None if ids is None else [i + 1 for i in ids] for ids in real(rust, texts, rows)]

    monkeypatch.setattr(fast_bpe, "_rust_ids", off_by_one)
    fast = fast_clip_tokenizer(_slow())
    with caplog.at_level(logging.WARNING):
        assert fast.rust() is None
    assert "disagrees" in caplog.text
    texts = ["a photo of a dog."] * fast_bpe.BUILD_AT
    assert torch.equal(fast(texts), _slow()(texts))


def test_without_tokenizers_the_slow_tokenizer_is_used(fresh_cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import fails
    fast = fast_clip_tokenizer(_slow())
    assert fast.rust() is None
    texts = ["a photo of a dog."] * fast_bpe.BUILD_AT
    assert torch.equal(fast(texts), _slow()(texts))


def test_other_tokenizers_are_not_wrapped():
    from open_clip.tokenizer import SimpleTokenizer

    canonical = SimpleTokenizer(clean="canonicalize")
    assert fast_clip_tokenizer(canonical) is canonical


def test_models_get_the_fast_tokenizer_and_keep_their_token_layout():
    from starft.models import create_model

    model = create_model("starft-tiny-vit")
    assert isinstance(model.tokenizer, FastClipTokenizer)
    layout = model.token_layout()
    assert layout.eot == model.tokenizer.slow.eot_token_id
    assert "photo" in model.vocabulary_words()
