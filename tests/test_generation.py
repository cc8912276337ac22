"""Pool and concept-bank generation without a network: parsing, cleaning, cache, prompts, replay."""

from __future__ import annotations

import json

import pytest

from _fake_lm import FakeClient
from starft.data import load_pool
from starft.data.concept_bank import load_concept_bank
from starft.errors import StarftError
from starft.generation import (
    AnswerCache,
    CachedClient,
    CleanOptions,
    Sampling,
    clean_descriptors,
    generate_concept_bank,
    generate_pool,
    load_prompts,
    open_client,
    read_classnames,
    validate_pool_file,
    write_concept_bank,
    write_pool,
)
from starft.generation.normalise import normalise_descriptor
from starft.generation.parse import parse_list, parse_weighted


@pytest.mark.parametrize(
    ("answer", "items"),
    [
        (
            "1. On the beach\n2) in the snow\n- near water",
            ["On the beach", "in the snow", "near water"],
        ),
        ("Here are three:\n* **In fog**\n• 'at dusk'", ["In fog", "at dusk"]),
        ("Background, texture, resolution", ["Background", "texture", "resolution"]),
        ('```json\n["in the snow", "on grass"]\n```', ["in the snow", "on grass"]),
        ("{} in the snow, at night", ["{} in the snow, at night"]),
    ],
)
def test_parse_list_accepts_the_shapes_models_answer_in(answer, items):
    assert parse_list(answer) == items


def test_parse_weighted_reads_weights_or_leaves_none():
    pairs = parse_weighted("bird beak: 3\nlong neck (2.5)\n- webbed feet - 4\nfeathers\nwing = 1/5")
    assert pairs == [
        ("bird beak", 3.0),
        ("long neck", 2.5),
        ("webbed feet", 4.0),
        ("feathers", None),
        ("wing", 1.0),
    ]
    assert parse_weighted('{"beak": 2, "tail": "x"}') == [("beak", 2.0), ("tail", None)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  On  The Beach!! ", "{} on the beach."),
        ("“{} In Fog”", "{} in fog."),
        ("a blurry photo of {}", "a blurry photo of {}."),
        ("in the snow .", "{} in the snow."),
        ("ｉｎ ｆｏｇ", "{} in fog."),  # full-width letters (NFKC)
        ("...", ""),
    ],
)
def test_normalise_descriptor(raw, expected):
    assert normalise_descriptor(raw) == expected


def test_clean_descriptors_counts_every_filter_and_keeps_model_order():
    raw = [
        ("background", "on the beach"),
        ("background", "{} on {}"),
        ("background", "[class] in a field"),
        ("background", "next to a Circle"),
        ("background", "near the circles"),
        ("background", "ON THE BEACH."),
        ("background", "on the sandy beach"),
        ("background", "on a sandy beach"),
        ("background", "in the rain"),
        ("texture", "with stripes"),
        ("texture", "near a tomato plant"),
        ("texture", "{}"),
    ]
    options = CleanOptions(per_concept=2, forbidden=("tomato",), cosine_threshold=None)
    result = clean_descriptors(raw, options, classnames=["circle"])
    assert result.pool == {
        "background": ["{} on the beach.", "{} on the sandy beach."],
        "texture": ["{} with stripes."],
    }
    steps = {s["filter"]: (s["before"], s["after"]) for s in result.steps}
    assert steps["format"] == (12, 9)  # two slots, a bracketed placeholder, no words
    assert steps["forbidden"] == (9, 6)  # class name (also plural) and a user word
    assert steps["exact_duplicates"] == (6, 5)
    assert steps["token_overlap"] == (5, 4)  # "on a sandy beach" vs "on the sandy beach"
    assert steps["per_concept"] == (4, 3)
    assert "skipped" in next(s for s in result.steps if s["filter"] == "context")
    reasons = {d["text"]: d["filter"] for d in result.dropped}
    assert reasons["{} next to a circle."] == "forbidden"
    assert reasons["{} in the rain."] == "per_concept"


def test_generate_pool_two_stages_with_a_plain_client(tmp_path):
    client = FakeClient()
    generated = generate_pool(client, classnames=["circle"], per_concept=5, per_call=4)
    # Stage 1 named three concepts; stage 2 asked about each, in rounds while short of 5.
    assert list(generated.pool) == ["background", "texture", "resolution"]
    assert generated.pool["background"][:3] == [
        "{} on the beach.",
        "{} in the snow.",
        "{} in a dense forest.",
    ]
    assert all(len(v) <= 5 for v in generated.pool.values())
    info = generated.provenance
    assert info["concepts"]["source"] == "model" and info["rounds"]["background"] == 2
    assert info["backend"] == "custom" and info["sampling"]["temperature"] == 0.0
    assert info["prompts"]["concepts"][-1]["content"].startswith("List possible spurious")
    assert all(call["temperature"] == 0.0 for call in client.calls)
    path = write_pool(tmp_path / "pool.json", generated)
    assert load_pool(path) == generated.descriptors()  # what method.pool=FILE trains with
    assert validate_pool_file(path, classnames=["circle"]) == []


def test_stage_one_keeps_the_first_concepts_without_explanations():
    class Explains:
        def complete(self, messages, *, temperature, max_tokens, seed):
            if "spurious correlations" in messages[-1]["content"]:
                return "Sure:\n1. Background: the setting\n2. Lighting (time of day)\n3. Pose"
            return "at dusk" if "concept: lighting" in messages[-1]["content"] else "in fog"

    generated = generate_pool(Explains(), num_concepts=2, per_concept=1)
    assert generated.pool == {"background": ["{} in fog."], "lighting": ["{} at dusk."]}


def test_growing_a_pool_keeps_every_earlier_answer(tmp_path):
    cache_path = tmp_path / "cache.jsonl"
    small = CachedClient(FakeClient(), AnswerCache(cache_path), "fake", "m")
    first = generate_pool(small, concepts=["background"], per_concept=3, per_call=3)
    lines_before = cache_path.read_text().splitlines()
    grown = CachedClient(FakeClient(), AnswerCache(cache_path), "fake", "m")
    second = generate_pool(grown, concepts=["background"], per_concept=8, per_call=3)
    lines_after = cache_path.read_text().splitlines()
    assert lines_after[: len(lines_before)] == lines_before  # append-only
    assert grown.hits == 1 and grown.calls == 1  # round 0 reused, round 1 new
    assert len(second.pool["background"]) == 8
    assert second.pool["background"][:3] == first.pool["background"]


def test_cache_keys_on_every_setting_and_replay_errors_on_a_miss(tmp_path):
    cache_path = tmp_path / "c.jsonl"
    client = CachedClient(FakeClient(), AnswerCache(cache_path), "openai", "m")
    messages = [{"role": "user", "content": "Spurious concept: texture. List 3"}]
    client.complete(messages, temperature=0.0, max_tokens=10, seed=0)
    for change in ({"seed": 1}, {"temperature": 0.5}, {"max_tokens": 11}, {"sample": 1}):
        kwargs = {"temperature": 0.0, "max_tokens": 10, "seed": 0, **change}
        client.complete(messages, **kwargs)
    assert client.calls == 5 and len(AnswerCache(cache_path)) == 5
    replay = open_client("replay", "m", cache_path)
    assert replay.backend == "openai"  # keys are those of the recording backend
    assert replay.complete(messages, temperature=0.0, max_tokens=10, seed=0).startswith("With")
    with pytest.raises(StarftError, match=r"replay: no cached answer .* sample 0"):
        replay.complete(messages, temperature=0.0, max_tokens=10, seed=7)
    with pytest.raises(StarftError, match="needs an existing answer cache"):
        open_client("replay", "m", tmp_path / "none.jsonl")
    with pytest.raises(StarftError, match="no answers from model 'other'"):
        open_client("replay", "other", cache_path)


def test_cache_file_damage(tmp_path):
    path = tmp_path / "c.jsonl"
    good = json.dumps({"key": "k1", "answer": "a"})
    path.write_text(good + "\n" + '{"key": "k2", "ans')  # a crash mid-append
    assert len(AnswerCache(path)) == 1
    path.write_text("not json\n" + good + "\n")
    with pytest.raises(StarftError, match="line 1"):
        AnswerCache(path)


def test_empty_answer_is_an_error_and_not_cached(tmp_path):
    class Silent:
        def complete(self, messages, *, temperature, max_tokens, seed):
            return "  \n"

    client = CachedClient(Silent(), AnswerCache(tmp_path / "c.jsonl"), "x", "m")
    with pytest.raises(StarftError, match="empty answer"):
        generate_pool(client, concepts=["background"])
    assert not (tmp_path / "c.jsonl").exists()


def test_an_answer_without_usable_descriptors_is_one_line_and_writes_nothing(tmp_path):
    class Refuses:
        def complete(self, messages, *, temperature, max_tokens, seed):
            return "{} and {}\n[object] here"

    with pytest.raises(StarftError, match=r"concept 'background': .* no usable descriptor"):
        generate_pool(Refuses(), concepts=["background"])


def test_prompts_are_data_and_overridable(tmp_path):
    prompts = load_prompts()
    assert "{concept}" in prompts.prompts["descriptors"][-1]["content"]
    override = tmp_path / "p.json"
    override.write_text(json.dumps({"descriptors": "Give {k} phrases about {concept}."}))
    custom = load_prompts(override)
    assert custom.render("descriptors", domain="x", concept="fog", k=2) == [
        {"role": "user", "content": "Give 2 phrases about fog."}
    ]
    assert custom.prompts["concepts"] == prompts.prompts["concepts"]
    override.write_text(json.dumps({"descriptors": "about {classname}"}))
    with pytest.raises(StarftError, match=r"uses '\{classname\}'"):
        load_prompts(override)
    override.write_text(json.dumps({"descriptor": "x"}))
    with pytest.raises(StarftError, match="unknown prompt 'descriptor'"):
        load_prompts(override)


def test_concept_bank_generation_and_reader(tmp_path):
    generated = generate_concept_bank(FakeClient(), ["circle", "square"], per_class=2)
    path = write_concept_bank(tmp_path / "bank.json", generated)
    bank = load_concept_bank(path)
    assert [(c.concept, c.weight) for c in bank["circle"]] == [
        ("round outline", 5.0),
        ("smooth edge", 3.0),
    ]
    # "right angles: 0" has no usable weight: dropped, never given a made-up one.
    assert [c.concept for c in bank["square"]] == ["four corners", "straight edges"]
    assert json.loads(path.read_text())["_provenance"]["final"] == {"circle": 2, "square": 2}
    with pytest.raises(StarftError, match="class 'triangle'"):
        generate_concept_bank(FakeClient(), ["triangle"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"a": []}, "non-empty list"),
        ({"a": [{"concept": "x", "weight": -1}]}, "finite and > 0"),
        ({"a": [{"concept": "x", "weight": True}]}, "must be a number"),
        ({"a": [{"concept": "x", "weight": 1}, {"concept": "x", "weight": 2}]}, "twice"),
        ({"a": [{"concept": "x"}]}, "'concept' and 'weight'"),
        ({"_about": "x"}, "no class"),
    ],
)
def test_concept_bank_reader_names_the_bad_entry(tmp_path, data, message):
    path = tmp_path / "bank.json"
    path.write_text(json.dumps(data))
    with pytest.raises(StarftError, match=message):
        load_concept_bank(path)


def test_read_classnames(tmp_path):
    (tmp_path / "c.txt").write_text("# shapes\ncircle\n\nsquare\n")
    assert read_classnames(tmp_path / "c.txt") == ["circle", "square"]
    (tmp_path / "c.json").write_text('["a", "a"]')
    with pytest.raises(StarftError, match="listed twice"):
        read_classnames(tmp_path / "c.json")


def test_sampling_is_checked():
    with pytest.raises(StarftError, match="temperature"):
        Sampling(temperature=-1)


def test_target_model_filters_on_the_sandbox_clip():
    from starft.generation import TargetText
    from starft.models import create_model

    target = TargetText(create_model("sandbox-clip"), "a photo of a {}.", ["circle", "diamond"])
    assert target.context_length == 32
    assert target.token_counts(["a photo of a circle."]) == [8]  # start, 6 words/marks, end
    raw = [
        ("background", "in the snow"),
        ("background", "on fresh snow"),  # the same scene for this model: cosine > 0.99
        ("background", "at night"),
        ("background", "in a " + "very " * 30 + "dark forest"),  # 36 words: over 32 tokens
    ]
    result = clean_descriptors(raw, CleanOptions(), target)
    assert result.pool == {"background": ["{} in the snow.", "{} at night."]}
    dropped = {d["text"]: d["filter"] for d in result.dropped}
    assert dropped["{} on fresh snow."] == "embedding_duplicates"
    assert dropped["{} in a " + "very " * 30 + "dark forest."] == "context"
