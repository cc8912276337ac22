"""The transformers backend on a tiny random causal LM saved to disk (no download)."""

from __future__ import annotations

import pytest

from starft.errors import StarftError
from starft.generation import Sampling, generate_pool, open_client

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = "in on the snow beach forest grass with a striped texture spurious concept background"


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A 1-layer GPT-2, a word-level tokenizer and a chat template, saved with save_pretrained."""
    import torch

    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "[EOS]", ".", ":", *WORDS.split()])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(vocab), n_positions=512, n_embd=16, n_layer=1, n_head=2,
        bos_token_id=2, eos_token_id=2, pad_token_id=1, tie_word_embeddings=False,
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(config)
    # A constant final hidden state and an output layer that favours two words: greedy decoding
    # says "snow", sampling mostly mixes "snow" and "beach" (random weights mostly say nothing).
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[vocab["snow"]] = 0.25
        model.lm_head.weight[vocab["beach"]] = 0.2
    path = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_local_model_answers_deterministically_and_is_cached(tiny_lm, tmp_path):
    cache = tmp_path / "c.jsonl"
    client = open_client("transformers", str(tiny_lm), cache)
    messages = [{"role": "user", "content": "spurious concept background"}]
    answer = client.complete(messages, temperature=0.0, max_tokens=6, seed=0)
    assert answer.split()[:2] == ["snow", "snow"]
    again = open_client("transformers", str(tiny_lm), cache)
    assert again.complete(messages, temperature=0.0, max_tokens=6, seed=0) == answer
    assert again.hits == 1 and again.calls == 0
    direct = again.client.complete(messages, temperature=0.0, max_tokens=6, seed=5)
    assert direct == answer  # greedy: the seed does not matter
    sampled = [
        again.client.complete(messages, temperature=1.0, max_tokens=6, seed=7) for _ in range(2)
    ]
    assert sampled[0] == sampled[1]  # sampling is seeded per call


def test_generate_pool_through_the_local_model(tiny_lm, tmp_path):
    client = open_client("transformers", str(tiny_lm), tmp_path / "c.jsonl")
    generated = generate_pool(
        client, concepts=["background"], per_concept=2, max_rounds=1, sampling=Sampling(0, 8)
    )
    assert generated.provenance["backend"] == "transformers"
    assert generated.provenance["model"] == str(tiny_lm)
    assert generated.pool["background"]
    assert all(d.startswith("{} ") and d.endswith(".") for d in generated.pool["background"])


def test_prompt_longer_than_the_context_is_one_line(tiny_lm, tmp_path):
    client = open_client("transformers", str(tiny_lm), None)
    messages = [{"role": "user", "content": "snow " * 600}]
    with pytest.raises(StarftError, match=r"exceed the context .* \(512 tokens\)"):
        client.complete(messages, temperature=0.0, max_tokens=8, seed=0)


def test_missing_folder_is_one_line(tmp_path):
    with pytest.raises(StarftError, match="does not exist"):
        open_client("transformers", str(tmp_path / "nope"), None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StarftError, match="cannot load a causal LM"):
        open_client("transformers", str(tmp_path / "empty"), None)
