"""Pretraining captions for the sandbox world: random, truthful, short.

A tiny CLIP learns an attribute only if captions name it, and learns the attributes *separately*
only if captions name random subsets of them: a caption that always said everything would let the
text tower treat "red star on the grass" as one token soup. So each caption names a random
non-empty subset of shape, colour, scene and style (the shape most of the time), through varied
phrasings kept as data in ``resources/sandbox/captions.json``. Every phrase contains its
attribute's own vocabulary word and no other attribute's word, so a caption can be checked
against the image word by word, and no caption is ever false (colour is never named for a sketch,
which is grey).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from starft.errors import StarftError
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.world import ATTRIBUTES, vocabulary

_CAPTIONS = "captions.json"
_VOWELS = "aeiou"
INVISIBLE_COLOUR_STYLES = ("sketch",)  # styles that draw no colour, so captions never name it


@functools.cache
def _data() -> dict[str, Any]:
    """captions.json, checked against the world's vocabularies once."""
    data = read_sandbox_json(_CAPTIONS)
    for attribute in ATTRIBUTES:
        if not 0.0 <= float(data["probability"][attribute]) <= 1.0:
            raise StarftError(f"sandbox {_CAPTIONS}: probability of '{attribute}' not in [0, 1]")
    for key, attribute in (("style_prefix", "style"), ("scene_phrases", "scene")):
        missing = [word for word in vocabulary(attribute) if word not in data[key]]
        if missing:
            raise StarftError(f"sandbox {_CAPTIONS}: '{key}' has no entry for '{missing[0]}'")
    return data


def with_article(noun_phrase: str, article: str = "a") -> str:
    """``"a orange star"`` -> ``"an orange star"``; ``"the ..."`` is left alone."""
    if article == "a" and noun_phrase[:1] in _VOWELS:
        return f"an {noun_phrase}"
    return f"{article} {noun_phrase}"


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def named_attributes(attrs: Mapping[str, int], rng: np.random.Generator) -> list[str]:
    """The random non-empty subset of attributes a caption of ``attrs`` will name."""
    data = _data()
    style = vocabulary("style")[attrs["style"]]
    allowed = [a for a in ATTRIBUTES if not (a == "colour" and style in INVISIBLE_COLOUR_STYLES)]
    draws = rng.random(len(ATTRIBUTES))
    named = [a for a, u in zip(ATTRIBUTES, draws) if a in allowed and u < data["probability"][a]]
    if not named:  # never an empty caption: name one visible attribute instead
        named = [_pick(rng, allowed)]
    return named


def caption(attrs: Mapping[str, int], rng: np.random.Generator) -> str:
    """A caption naming a random non-empty subset of the image's attributes, ending in ``.``.

    Examples: ``"a photo of a red star on the grass."``, ``"a sketch of a circle."``, ``"a blue
    heart."``, ``"a cartoon of something in the snow."``, ``"an image of the square in painting
    style."``. All randomness comes from ``rng`` (the dataset seeds it per epoch and sample).
    """
    data = _data()
    words = {a: vocabulary(a)[attrs[a]] for a in ATTRIBUTES}
    named = named_attributes(attrs, rng)
    articles = list(data["articles"])
    weights = np.asarray([data["articles"][a] for a in articles], dtype=float)
    article = articles[int(rng.choice(len(articles), p=weights / weights.sum()))]

    if "shape" in named:
        noun = " ".join([words["colour"]] * ("colour" in named) + [words["shape"]])
        noun = with_article(noun, article)
    elif "colour" in named:
        form = _pick(rng, data["unnamed_shape_coloured"])
        noun = form.format(words["colour"])
        if form.startswith("{}"):
            noun = with_article(noun, article)
    else:
        noun = _pick(rng, data["unnamed_shape"])

    if "scene" in named:
        if rng.random() < data["scene_generic_probability"]:
            noun += " " + data["scene_generic"].format(words["scene"])
        else:
            noun += " " + _pick(rng, data["scene_phrases"][words["scene"]])

    if "style" in named and rng.random() >= data["style_suffix_probability"]:
        text = f"{data['style_prefix'][words['style']]} {noun}"
    else:
        opener = _pick(rng, data["openers"])
        text = f"{opener} {noun}" if opener else noun
        if "style" in named:
            text += " " + data["style_suffix"].format(words["style"])
    return text + "."
