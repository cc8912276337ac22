"""starft: robust fine-tuning of zero-shot vision-language models.

Library entry points (the CLI in :mod:`starft.cli` is a thin layer over these):

- :func:`starft.models.create_model` — a model behind the :class:`~starft.models.ClipModel`
  protocol: open_clip (any architecture, pretrained tag, checkpoint, ``hf-hub:`` name from the
  local cache) or Hugging Face ``transformers`` CLIP / SigLIP (``hf:PATH_OR_ID``).
- :func:`starft.methods.create_method` — a fine-tuning recipe (``flyp``, ``starft``, ...).
- :func:`starft.data.create_dataset` — a registered dataset returning dict samples.
- :func:`starft.train.fit` — the training loop; :func:`starft.eval.evaluate` — evaluation.
"""

__version__ = "0.1.0"

from starft.errors import StarftError

__all__ = ["StarftError", "__version__"]
