"""A local ``transformers`` causal language model as a :class:`ChatClient`.

The model is loaded from a folder with ``local_files_only=True``: generation never downloads
anything, the user points at weights already on disk. ``transformers`` is imported only when this
backend is used (``pip install 'starft[hf]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starft.errors import StarftError
from starft.generation.client import Message


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise StarftError(
            "--backend transformers needs the transformers package: pip install 'starft[hf]'"
        ) from None
    return transformers


class TransformersChatClient:
    """Greedy (temperature 0) or sampled chat answers from a local causal LM folder.

    The conversation goes through the tokenizer's chat template when it has one; otherwise it is
    written as ``role: content`` lines followed by ``assistant:``.
    """

    def __init__(self, model_path: str | Path, device: str = "cpu") -> None:
        transformers = _import_transformers()
        path = Path(model_path)
        if not path.is_dir():
            raise StarftError(
                f"--backend transformers: model folder '{path}' does not exist (give the folder a "
                "model was saved to with save_pretrained)"
            )
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(path), local_files_only=True
            )
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True
            )
        except (OSError, ValueError, KeyError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise StarftError(f"cannot load a causal LM from '{path}': {first}") from None
        self.model.to(device).eval()
        self.device = device

    def _prompt_ids(self, messages: Sequence[Message]) -> Any:
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(
                [dict(m) for m in messages], add_generation_prompt=True, return_tensors="pt"
            )
            # transformers 5 returns a BatchEncoding here, 4.x a tensor.
            return ids["input_ids"] if hasattr(ids, "keys") else ids
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return self.tokenizer(text, return_tensors="pt")["input_ids"]

    def complete(
        self, messages: Sequence[Message], *, temperature: float, max_tokens: int, seed: int
    ) -> str:
        import torch

        input_ids = self._prompt_ids(messages).to(self.device)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and input_ids.shape[1] + int(max_tokens) > int(limit):
            raise StarftError(
                f"the prompt ({input_ids.shape[1]} tokens) plus max_tokens {max_tokens} exceed "
                f"the context of '{self.model.config.name_or_path}' ({limit} tokens): lower "
                "--max-tokens or --max-rounds"
            )
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {"do_sample": temperature > 0}
        if temperature > 0:
            kwargs["temperature"] = float(temperature)
        # Seed a private RNG state so a call neither depends on nor disturbs the caller's.
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(int(seed))
            output = self.model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=int(max_tokens),
                pad_token_id=pad,
                **kwargs,
            )
        new_tokens = output[0, input_ids.shape[1] :]
        return str(self.tokenizer.decode(new_tokens, skip_special_tokens=True))
