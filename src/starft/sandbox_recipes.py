"""The shipped sandbox models' pretraining recipes: one table, light enough for CLI start-up.

``starft sandbox pretrain --model`` takes its choices and help text from :data:`RECIPES` while the
parser is built, and :mod:`starft.sandbox.pretrain` runs the recipes. The table lives outside
:mod:`starft.sandbox` because importing any module of that package imports the whole package
(the world, its renderer, torch), which would slow every ``starft`` command down.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# The shipped sandbox models: name -> (packaged recipe, weights file the recipe writes).
RECIPES = {
    "sandbox-clip": ("recipes/sandbox_pretrain.yaml", "sandbox_clip.safetensors"),
    "sandbox-clip-vit": ("recipes/sandbox_pretrain_vit.yaml", "sandbox_clip_vit.safetensors"),
}


def recipe_path(model: str = "sandbox-clip") -> Path:
    """The packaged recipe that made the shipped ``model``."""
    return Path(str(resources.files("starft") / "resources" / RECIPES[model][0]))
