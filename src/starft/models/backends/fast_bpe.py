"""A Rust twin of open_clip's CLIP BPE tokenizer that gives the same token ids, or nothing.

open_clip's ``SimpleTokenizer`` runs ftfy, a regex and the BPE merges in Python, about 30 µs per
caption: 2.7 s of an ImageNet zero-shot head (1000 classes x 80 templates) on one core. The Hugging
Face ``tokenizers`` library runs the same byte-level BPE in Rust. :func:`fast_clip_tokenizer`
builds it from the slow tokenizer's *own* vocabulary and merge ranks (no file is read, nothing is
downloaded) and returns a wrapper that is used only where it provably gives the slow ids:

* the slow tokenizer must be a plain ``SimpleTokenizer`` (``clean="lower"``, no reduction mask,
  only the two CLIP special tokens); anything else keeps the slow tokenizer;
* a string takes the fast path only if it is printable ASCII without ``&`` and ``<``. On such text
  ftfy and ``html.unescape`` change nothing and no special token can occur, so the slow cleaning
  is exactly whitespace collapsing + lower-casing, done here the same way. Every other string
  (accents, control characters, HTML entities) goes through the slow tokenizer;
* at construction a probe set (contractions, digits, punctuation runs, mixed case) is encoded both
  ways; one differing id and the slow tokenizer is kept, with a warning.

Without ``tokenizers`` installed (it comes with the ``hf`` extra) the slow tokenizer is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)

# open_clip's pre-tokenisation pattern without its special-token alternatives (special tokens
# never reach the fast path: strings with '<' go to the slow tokenizer).
_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

PROBES = (
    "a photo of a tench.",
    "A PHOTO of the  Great   White Shark!",
    "it's a dog's toy; they're here, we've seen, I'm sure, you'll see, he'd go",
    "CAN'T won't O'Neil rock'n'roll 's 't",
    "3d render 1234 of 42nd street, 1.5x zoom, 100% (blurry) #tag @home",
    'a --- b ... c!!! ??? ;-) :) [x] {y} ~z^ `q` _u_ |p| \\ / * + = $ "quoted"',
    "itap of a {}.",
    "   leading and trailing spaces   ",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 300,
)


#: calls with fewer fast-path strings than this do not trigger building the Rust tokenizer
BUILD_AT = 256


def fast_path_ok(text: str) -> bool:
    """Whether the slow cleaning of ``text`` reduces to whitespace collapsing + lower-casing."""
    return text.isascii() and text.isprintable() and "&" not in text and "<" not in text


class FastClipTokenizer:
    """open_clip ``SimpleTokenizer`` call semantics with BPE in Rust; see the module docstring.

    The Rust tokenizer is built (about a second) and verified on the first call with at least
    :data:`BUILD_AT` strings, then shared by every tokenizer with the same vocabulary and merges
    in the process; short calls before that use the slow tokenizer, so creating a model stays
    cheap. Attributes the rest of starft reads (``sot_token_id``, ``encoder``, ...) are the slow
    tokenizer's, which stays available as ``slow``.
    """

    def __init__(self, slow: Any) -> None:
        self.slow = slow
        self._key: int | None = None

    def __getattr__(self, name: str) -> Any:
        if name in ("slow", "_key"):  # not yet set (unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.slow, name)

    @property
    def key(self) -> int:
        """Fingerprint of the vocabulary and merges: tokenizers sharing it share the Rust twin."""
        if self._key is None:
            self._key = hash((tuple(self.slow.encoder.items()), tuple(self.slow.bpe_ranks)))
        return self._key

    def rust(self, demand: int = BUILD_AT) -> Any:
        """The verified Rust tokenizer; None = use the slow one (not built yet, or unusable)."""
        if self.key not in _RUST:
            if demand < BUILD_AT:
                return None
            _RUST[self.key] = _build_verified(self.slow)
        return _RUST[self.key]

    def encode(self, text: str) -> list[int]:
        """Token ids without start/end-of-text, as ``SimpleTokenizer.encode``."""
        rust = self.rust(0) if self.key in _RUST else None
        if rust is None or not fast_path_ok(text):
            return self.slow.encode(text)
        return rust.encode(_clean(text), add_special_tokens=False).ids

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> Tensor:
        if isinstance(texts, str):
            texts = [texts]
        context_length = context_length or self.slow.context_length
        fast_rows = [i for i, text in enumerate(texts) if fast_path_ok(text)]
        rust = self.rust(len(fast_rows))
        if rust is None:
            return self.slow(list(texts), context_length)
        return _layout(self.slow, texts, _rust_ids(rust, texts, fast_rows), context_length)


def _clean(text: str) -> str:
    """open_clip's ``lower`` cleaning of a :func:`fast_path_ok` string."""
    return " ".join(text.split()).lower()


def _rust_ids(rust: Any, texts: Sequence[str], rows: list[int]) -> list[list[int] | None]:
    ids: list[list[int] | None] = [None] * len(texts)
    encodings = rust.encode_batch([_clean(texts[i]) for i in rows], add_special_tokens=False)
    for i, encoding in zip(rows, encodings):
        ids[i] = encoding.ids
    return ids


def _layout(
    slow: Any, texts: Sequence[str], ids: list[list[int] | None], context_length: int
) -> Tensor:
    """``[N, context_length]`` rows ``sot ids eot 0...`` exactly as ``SimpleTokenizer.__call__``;
    rows without ``ids`` are encoded by ``slow``."""
    sot, eot = slow.sot_token_id, slow.eot_token_id
    rows = []
    for text, row_ids in zip(texts, ids):
        row = [sot, *(row_ids if row_ids is not None else slow.encode(text)), eot]
        if len(row) > context_length:  # truncate, keeping end-of-text last (as open_clip)
            row = row[:context_length]
            row[-1] = eot
        rows.append(row + [0] * (context_length - len(row)))
    if not rows:
        return torch.zeros(0, context_length, dtype=torch.long)
    return torch.tensor(rows, dtype=torch.long)


#: fingerprint -> verified Rust tokenizer, or None where it is unavailable or disagreed
_RUST: dict[int, Any] = {}


def _is_plain_clip_bpe(slow: Any) -> bool:
    try:
        from open_clip.tokenizer import SimpleTokenizer, _clean_lower
    except ImportError:
        return False
    return (
        type(slow) is SimpleTokenizer
        and slow.clean_fn is _clean_lower
        and slow.reduction_fn is None
        and len(slow.all_special_ids) == 2
    )


def _build_rust_bpe(slow: Any) -> Any:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    merges = sorted(slow.bpe_ranks, key=slow.bpe_ranks.__getitem__)
    tokenizer = Tokenizer(
        models.BPE(vocab=dict(slow.encoder), merges=merges, end_of_word_suffix="</w>")
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return tokenizer


def _build_verified(slow: Any, probes: Sequence[str] = PROBES) -> Any:
    """The Rust twin of ``slow`` if it reproduces ``slow`` on ``probes``, else None."""
    try:
        rust = _build_rust_bpe(slow)
    except ImportError:
        log.debug("tokenizers is not installed: open_clip's Python BPE tokenizer is used")
        return None
    probes = [p for p in probes if fast_path_ok(p)]
    length = 77
    ours = _layout(slow, probes, _rust_ids(rust, probes, list(range(len(probes)))), length)
    if not torch.equal(ours, slow(probes, length)):
        log.warning(
            "the Rust BPE tokenizer disagrees with open_clip's on a probe string: using "
            "open_clip's Python tokenizer"
        )
        return None
    return rust


def fast_clip_tokenizer(slow: Any) -> Any:
    """``slow`` wrapped in :class:`FastClipTokenizer` if it is open_clip's plain CLIP BPE."""
    return FastClipTokenizer(slow) if _is_plain_clip_bpe(slow) else slow
