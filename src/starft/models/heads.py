"""Linear classification heads on normalised image features (FT, LP, LP-FT), saved beside weights.

A head lives in ``classification_head.safetensors`` inside a saved-model folder, with its class
names in the file's metadata, so a fine-tuned classifier travels as one folder and the model's
library (open_clip, ``transformers``) still loads the towers from it unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from starft.errors import StarftError
from starft.models.protocol import ClipModel

HEAD_FILE = "classification_head.safetensors"


class LinearHeadClassifier(nn.Module):
    """Images -> ``head(normalize(f(x)))``."""

    def __init__(self, model: ClipModel, head: nn.Linear) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.model.encode_image(images, normalize=True).float())


def save_head(head: nn.Linear, classnames: Sequence[str], folder: str | Path) -> Path:
    """Write the head into a saved-model folder (atomically, via a temporary file)."""
    import os
    import tempfile

    from safetensors.torch import save_file

    folder = Path(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    from starft.utils.io import follow_umask

    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{HEAD_FILE}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"classnames": json.dumps(list(classnames))})
        follow_umask(tmp)  # mkstemp made it 0600
        os.replace(tmp, folder / HEAD_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder / HEAD_FILE


def load_head(folder: str | Path) -> tuple[nn.Linear, list[str]] | None:
    """The head saved in ``folder`` and its class names, or None if the folder has none."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(folder) / HEAD_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            classnames = json.loads((f.metadata() or {})["classnames"])
        state = load_file(str(path))
        out_features, in_features = state["weight"].shape
    except (KeyError, ValueError, OSError) as err:
        raise StarftError(f"classification head '{path}' cannot be read: {err}") from None
    head = nn.Linear(in_features, out_features)
    head.load_state_dict(state)
    return head, classnames
