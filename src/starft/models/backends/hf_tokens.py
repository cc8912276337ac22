"""Token layout and word vocabulary of a Hugging Face tokenizer (``transformers`` / open_clip's
``HFTokenizer`` wrapper of one): shared by both backends, no library import needed."""

from __future__ import annotations

from typing import Any

from starft.errors import StarftError
from starft.models.protocol import TokenLayout


def hf_token_layout(tok: Any, context_length: int, name: str) -> TokenLayout:
    """Where the tokenizer puts start/end-of-text and padding; regular ids = non-special ids."""
    eos = tok.eos_token_id
    if eos is None:
        raise StarftError(f"model '{name}': its tokenizer has no end-of-text token")
    ids = tok("a")["input_ids"]
    bos = tok.bos_token_id
    sot = bos if bos is not None and ids and ids[0] == bos else None
    special = set(tok.all_special_ids)
    regular = tuple(i for i in sorted(tok.get_vocab().values()) if i not in special)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    return TokenLayout(len(regular), sot, int(eos), int(pad), context_length, regular)


def hf_vocabulary_words(tok: Any) -> list[str]:
    """Whole-word alphabetic vocabulary entries, whatever the tokenizer marks words with."""
    special = set(tok.all_special_tokens)
    vocab = [w for w in tok.get_vocab() if w not in special]
    if any(w.endswith("</w>") for w in vocab):  # CLIP BPE: word-final pieces
        words = [w[:-4] for w in vocab if w.endswith("</w>")]
    elif any(w.startswith(("▁", "Ġ")) for w in vocab):  # sentencepiece / byte-level BPE
        words = [w[1:] for w in vocab if w.startswith(("▁", "Ġ"))]
    else:  # word-level vocabularies
        words = vocab
    return sorted({w for w in words if w.isalpha()})
