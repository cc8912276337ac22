"""Normalising descriptor and concept text, and the word-level checks on it.

A descriptor comes out as lower-case NFKC text with single spaces, exactly one ``{}`` and one final
period: ``"  {} On the  Beach!! "`` -> ``"{} on the beach."``; a phrase without ``{}`` is turned
into a suffix of the clean caption (``"in the snow"`` -> ``"{} in the snow."``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "´": "'", "`": "'"})
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_TRAILING = ".!?;:,\"' "
_ARTICLES = frozenset({"a", "an", "the"})
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Bracketed placeholders ("[class]", "<object>") mean the model wrote its own slot for the caption.
BAD_CHARACTERS = frozenset("[]<>")


def normalise_text(text: str) -> str:
    """NFKC, straight quotes, lower case, single spaces, no space before punctuation."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def normalise_descriptor(text: str) -> str:
    """A descriptor in canonical form (may be ``"{}."`` or lack a valid slot; see the filters)."""
    text = normalise_text(text).strip(_TRAILING)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip(_TRAILING)
    if "{" not in text and "}" not in text:
        text = "{} " + text if text else ""
    return (text.rstrip(_TRAILING) + ".") if text else ""


def normalise_concept(text: str) -> str:
    """A concept name or visual concept: normalised text without final punctuation."""
    return normalise_text(text).strip(_TRAILING).strip()


def descriptor_words(descriptor: str) -> frozenset[str]:
    """The words a descriptor adds to a caption (its slot and articles removed).

    Articles go because in phrases of three or four words they would dominate the overlap:
    "on a sandy beach" and "on the sandy beach" are the same descriptor.
    """
    return frozenset(_WORD.findall(descriptor.replace("{}", " "))) - _ARTICLES


def token_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard overlap |a ∩ b| / |a ∪ b| of two word sets (1.0 for two empty sets)."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def forbidden_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    """A regex matching any of ``words`` as whole words (plural ``s``/``es`` included)."""
    phrases = sorted({normalise_concept(w) for w in words if normalise_concept(w)}, key=len)
    if not phrases:
        return None
    alternatives = "|".join(re.escape(p) for p in reversed(phrases))
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?:s|es)?(?![a-z0-9])")
