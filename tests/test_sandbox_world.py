"""The sandbox world: vocabularies, attribute tables, rendering, captions and descriptor pools."""

from __future__ import annotations

import re

import numpy as np
import pytest

from starft.data import SANDBOX_POOL_NAMES, list_pools, load_pool, spurious_caption
from starft.errors import StarftError
from starft.sandbox import captions as captions_module
from starft.sandbox import world
from starft.sandbox.captions import caption
from starft.sandbox.world import (
    ATTRIBUTES,
    AttributeTable,
    render,
    render_table,
    sample_attributes,
    vocabulary,
)

SIZES = {"shape": 10, "colour": 8, "scene": 8, "style": 5}


@pytest.fixture(scope="module")
def bpe():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def one(**attrs: int) -> dict[str, int]:
    return {"shape": 0, "colour": 0, "scene": 0, "style": 0, **attrs}


# ----------------------------------------------------------------------------- vocabularies


def test_vocabularies_are_single_lowercase_words_and_single_tokens(bpe) -> None:
    words = []
    for attribute in ATTRIBUTES:
        vocab = vocabulary(attribute)
        assert len(vocab) == SIZES[attribute] and len(set(vocab)) == len(vocab)
        assert all(re.fullmatch(r"[a-z]+", word) for word in vocab)
        assert all(len(bpe.encode(word)) == 1 for word in vocab), attribute
        words += vocab
    assert len(set(words)) == len(words)  # no word belongs to two attributes
    vocabulary("shape").append("blob")  # callers get a copy
    assert "blob" not in vocabulary("shape")
    with pytest.raises(StarftError, match="unknown sandbox attribute 'size'"):
        vocabulary("size")


# ----------------------------------------------------------------------------- tables


def test_attribute_table_access_and_checks() -> None:
    table = AttributeTable(shape=[1, 2, 3], colour=[0, 0, 7], scene=[5, 6, 7], style=[4, 0, 1])
    assert len(table) == 3
    assert table[2] == {"shape": 3, "colour": 7, "scene": 7, "style": 1}
    assert table[-1] == table[2]
    assert table["scene"].tolist() == [5, 6, 7] and table["scene"].dtype == np.int64
    assert table.words(0) == {
        "shape": "square",
        "colour": "red",
        "scene": "forest",
        "style": "blurry",
    }
    sub = table.subset([2, 0, 0])
    assert sub["shape"].tolist() == [3, 1, 1] and len(sub) == 3
    assert len(AttributeTable.concatenate([table, sub])) == 6
    with pytest.raises(ValueError):
        table["shape"][0] = 9  # columns are read-only
    with pytest.raises(IndexError):
        table[3]
    with pytest.raises(StarftError, match="'colour' ids must lie in"):
        AttributeTable(shape=[0], colour=[8], scene=[0], style=[0])
    with pytest.raises(StarftError, match="'scene' has 2 rows, expected 1"):
        AttributeTable(shape=[0], colour=[0], scene=[0, 1], style=[0])


def test_sample_attributes_uniform_and_independent() -> None:
    n = 40_000
    table = sample_attributes(n, np.random.default_rng(0))
    for attribute in ATTRIBUTES:
        k = SIZES[attribute]
        counts = np.bincount(table[attribute], minlength=k)
        chi2 = ((counts - n / k) ** 2 / (n / k)).sum()
        assert chi2 < (k - 1) + 5 * np.sqrt(2 * (k - 1)), (attribute, counts)
    for first, second in [("shape", "scene"), ("shape", "colour"), ("colour", "style")]:
        ka, kb = SIZES[first], SIZES[second]
        joint = np.zeros((ka, kb))
        np.add.at(joint, (table[first], table[second]), 1)
        expected = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True) / n
        chi2 = ((joint - expected) ** 2 / expected).sum()
        dof = (ka - 1) * (kb - 1)
        assert chi2 < dof + 5 * np.sqrt(2 * dof), (first, second, chi2)


def test_sample_attributes_fixed_forms() -> None:
    rng = np.random.default_rng(1)
    column = np.arange(12) % 10
    table = sample_attributes(12, rng, style=3, scene=[1, 6], shape=column)
    assert set(table["style"].tolist()) == {3}
    assert set(table["scene"].tolist()) <= {1, 6}
    assert table["shape"].tolist() == column.tolist()
    # A list is a set of allowed ids even when it has n entries; only an ndarray is a column.
    listed = sample_attributes(3, np.random.default_rng(2), shape=[7, 8, 9])
    assert set(listed["shape"].tolist()) <= {7, 8, 9}
    with pytest.raises(StarftError, match="unknown attribute 'size'"):
        sample_attributes(3, rng, size=1)
    with pytest.raises(StarftError, match="shape \\(2,\\), expected \\(3,\\)"):
        sample_attributes(3, rng, shape=np.array([1, 2]))
    with pytest.raises(StarftError, match="'colour' ids must lie in"):
        sample_attributes(3, rng, colour=8)


# ----------------------------------------------------------------------------- rendering


def test_render_is_deterministic_and_slices_match() -> None:
    table = sample_attributes(16, np.random.default_rng(3))
    full = render_table(table, seed=7, size=32)
    assert full.dtype == np.uint8 and full.shape == (16, 32, 32, 3)
    again = render_table(table, seed=7, size=32)
    assert np.array_equal(full, again)
    part = render_table(table.subset(range(5, 12)), seed=7, size=32, start=5)
    assert np.array_equal(part, full[5:12])
    single = render(table[9], np.random.default_rng((7, 9)), size=32)
    assert np.array_equal(single, full[9])
    other = render_table(table, seed=8, size=32)
    assert not any(np.array_equal(a, b) for a, b in zip(full, other))
    out = np.zeros_like(full)
    assert render_table(table, seed=7, size=32, out=out) is out and np.array_equal(out, full)


@pytest.mark.parametrize("size", [32, 48, 64])
def test_every_value_renders_at_every_size(size: int) -> None:
    rng = np.random.default_rng(size)
    for style in range(SIZES["style"]):
        for shape in range(SIZES["shape"]):
            image = render(
                one(shape=shape, style=style, scene=shape % 8, colour=shape % 8), rng, size
            )
            assert image.shape == (size, size, 3) and image.dtype == np.uint8
            assert image.std() > 5  # not a blank canvas
    for scene in range(SIZES["scene"]):
        for colour in range(SIZES["colour"]):
            render(one(scene=scene, colour=colour), rng, size)


def test_render_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(StarftError, match="'style' is missing"):
        render({"shape": 0, "colour": 0, "scene": 0}, rng)
    with pytest.raises(StarftError, match="shape id 10 outside"):
        render(one(shape=10), rng)
    with pytest.raises(StarftError, match="image size must be an integer >= 16"):
        render(one(), rng, size=8)


def test_objects_stay_inside_the_image() -> None:
    """The signed distance is positive (outside the object) on every border pixel."""
    grid = world._grid(48)
    rng = np.random.default_rng(4)
    for trial in range(200):
        obj = world._place_object(trial % SIZES["shape"], grid, rng)
        border = np.concatenate([obj.d[0], obj.d[-1], obj.d[:, 0], obj.d[:, -1]])
        assert border.min() > 0.5
        inside = (obj.d < 0).mean()
        assert 0.03 < inside < 0.5  # 35-65% of the side, times the shape's fill


def test_sketches_are_grey_and_other_styles_are_not() -> None:
    rng = np.random.default_rng(5)
    for style, name in enumerate(vocabulary("style")):
        image = render(one(style=style, colour=0, scene=1), rng, 48).astype(int)
        spread = np.abs(image - image.mean(axis=2, keepdims=True)).max()
        assert (spread == 0) == (name == "sketch"), name


def _histograms(images: np.ndarray, bins: int = 4) -> np.ndarray:
    """Square-rooted, normalised joint RGB histograms (bins³ per image)."""
    q = (images.astype(np.int64) * bins) // 256
    codes = ((q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]).reshape(len(images), -1)
    counts = np.stack([np.bincount(c, minlength=bins**3) for c in codes]).astype(float)
    return np.sqrt(counts / counts.sum(1, keepdims=True))


def _nearest_mean_accuracy(
    train: np.ndarray, train_y: np.ndarray, test: np.ndarray, test_y: np.ndarray, k: int
) -> float:
    means = np.stack([train[train_y == c].mean(0) for c in range(k)])
    pred = ((test[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    return float((pred == test_y).mean())


def test_scene_is_visible_from_colour_histograms() -> None:
    rng = np.random.default_rng(6)
    n = 480
    tables = [sample_attributes(n, rng, scene=np.arange(n) % 8, style=0) for _ in range(2)]
    train, test = (_histograms(render_table(t, seed, 32)) for t, seed in zip(tables, (60, 61)))
    accuracy = _nearest_mean_accuracy(train, tables[0]["scene"], test, tables[1]["scene"], 8)
    assert accuracy > 0.9


def test_colour_is_visible_given_the_scene() -> None:
    """Nearest class mean per scene: the scene is a nuisance shared by train and test."""
    rng = np.random.default_rng(7)
    n = 800

    def table() -> AttributeTable:
        cells = rng.permutation(np.arange(n) % 64)
        return sample_attributes(n, rng, colour=cells // 8, scene=cells % 8, style=0)

    tr, te = table(), table()
    a, b = _histograms(render_table(tr, 70, 32)), _histograms(render_table(te, 71, 32))
    correct = 0
    for scene in range(8):
        ta, tb = tr["scene"] == scene, te["scene"] == scene
        accuracy = _nearest_mean_accuracy(a[ta], tr["colour"][ta], b[tb], te["colour"][tb], 8)
        correct += accuracy * tb.sum()
    assert correct / n > 0.9


# ----------------------------------------------------------------------------- captions


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text))


def test_captions_are_truthful_short_and_varied(bpe) -> None:
    rng = np.random.default_rng(8)
    table = sample_attributes(4000, rng)
    vocab = {a: set(vocabulary(a)) for a in ATTRIBUTES}
    named = dict.fromkeys(ATTRIBUTES, 0)
    texts = set()
    longest = 0
    for i in range(len(table)):
        truth = table.words(i)
        text = caption(table[i], rng)
        texts.add(text)
        assert text.endswith(".") and text == text.strip() and "  " not in text
        words = _words(text)
        for attribute in ("shape", "colour", "scene"):
            used = words & vocab[attribute]
            assert used <= {truth[attribute]}, (text, truth)
            named[attribute] += bool(used)
        styles = words & vocab["style"]
        style = "blurry" if "blurry" in styles else (styles.pop() if styles else None)
        assert style in (None, truth["style"]), (text, truth)
        assert not (truth["style"] == "blurry" and "photo" in words and "blurry" not in words)
        named["style"] += style is not None
        if truth["style"] == "sketch":
            assert not words & vocab["colour"], text
        if not words & vocab["shape"]:
            assert re.search(r"\b(an? |the )?(\w+ )?object\b|\bsomething\b", text), text
        assert words & set().union(*vocab.values()) or "something" in words or "object" in words
        longest = max(longest, len(bpe.encode(text)) + 2)  # + start/end tokens
    assert longest < 30
    assert 0.77 < named["shape"] / len(table) < 0.83  # the shape is named ~80% of the time
    for attribute in ("scene", "style"):
        assert 0.4 < named[attribute] / len(table) < 0.6
    assert len(texts) > 1000


def test_caption_examples_read_well() -> None:
    rng = np.random.default_rng(9)
    texts = {caption(one(shape=9, colour=5, scene=7, style=4), rng) for _ in range(2000)}
    assert "a blurry photo of an orange arrow at night." in texts
    assert "an orange arrow." in texts
    assert not any(" a orange" in t or " a arrow" in t or t.startswith("a a") for t in texts)
    # Never empty: even a sketch (whose colour cannot be named) names something.
    for _ in range(200):
        text = caption(one(style=1), rng)
        assert _words(text) & {"circle", "water", "sketch"}, text


def test_caption_is_a_function_of_the_generator() -> None:
    attrs = one(shape=3, colour=2, scene=4, style=0)
    first = [caption(attrs, np.random.default_rng(s)) for s in range(50)]
    assert first == [caption(attrs, np.random.default_rng(s)) for s in range(50)]
    assert captions_module.named_attributes(attrs, np.random.default_rng(0))


# ----------------------------------------------------------------------------- pools


@pytest.mark.parametrize(
    ("name", "minimum"),
    [("sandbox_scene", 24), ("sandbox_texture", 12), ("sandbox_quality", 10), ("sandbox_all", 46)],
)
def test_sandbox_pools_load(name: str, minimum: int) -> None:
    assert name in list_pools() and name in SANDBOX_POOL_NAMES
    pool = load_pool(name)
    assert len(pool) >= minimum and len(set(pool)) == len(pool)
    for descriptor in pool:
        assert descriptor.count("{}") == 1 and descriptor.endswith(".")
        text = spurious_caption(descriptor, "a photo of the star.")
        assert "a photo of the star" in text and "{" not in text
        # A descriptor must not name an object colour or shape of the world.
        assert not _words(descriptor) & (set(vocabulary("colour")) | set(vocabulary("shape")))


def test_sandbox_all_pool_is_the_three_pools_together() -> None:
    parts = [load_pool(name) for name in ("sandbox_scene", "sandbox_texture", "sandbox_quality")]
    assert load_pool("sandbox_all") == [d for part in parts for d in part]


def test_scene_pool_names_every_scene() -> None:
    words = set().union(*(_words(d) for d in load_pool("sandbox_scene")))
    assert set(vocabulary("scene")) <= words
