"""The recipe behind the shipped ``sandbox-clip``: pretrain, measure zero-shot accuracy, export.

``starft sandbox pretrain`` runs :func:`pretrain`: the packaged recipe
(``resources/recipes/sandbox_pretrain.yaml``, overridable field by field) through the ordinary
training loop — FLYP on dataset captions *is* CLIP pretraining — then measures zero-shot accuracy
of every attribute on balanced held-out sets and writes the weights in float16 (the shipped file).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from starft.config import load_train_config
from starft.errors import StarftError
from starft.eval.harness import ModelSubject, evaluate_entries
from starft.eval.suites import SuiteEntry
from starft.models import ClipModel, create_model
from starft.sandbox_recipes import RECIPES, recipe_path
from starft.utils.io import atomic_write_json

# Zero-shot evaluation sets: balanced over the attribute, seeds disjoint from training (seed 0).
ZEROSHOT_SEED = 200
ATTRIBUTES = ("shape", "colour", "scene", "style")


def zeroshot_accuracy(
    model: ClipModel, n: int = 1000, seed: int = ZEROSHOT_SEED, device: str = "cpu"
) -> dict[str, float]:
    """Zero-shot top-1 of each world attribute on a balanced held-out set of ``n`` images."""
    entries = [
        SuiteEntry(
            dataset="sandbox_zeroshot",
            label=attribute,
            args={"attribute": attribute, "n": n, "seed": seed},
        )
        for attribute in ATTRIBUTES
    ]
    outcomes = evaluate_entries(
        ModelSubject(model), entries, transform=model.preprocess_val, batch_size=500, device=device
    )
    return {outcome.entry.label: outcome.metrics["top1"] for outcome in outcomes}


def export_fp16(model: ClipModel, path: str | Path) -> Path:
    """The library's state dict in float16 (half the size; loads into a float32 model exactly)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().half().contiguous() for k, v in model.library_state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; this file is meant to be shipped
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def pretrain(
    overrides: list[str] | None = None,
    resume: str | None = None,
    overwrite: bool = False,
    model: str = "sandbox-clip",
) -> dict[str, Any]:
    """Run ``model``'s recipe; returns (and writes to ``OUT/pretrain_report.json``) accuracies
    and paths."""
    from starft.train import fit

    if model not in RECIPES:
        raise StarftError(f"no pretraining recipe for '{model}' (known: {', '.join(RECIPES)})")
    config = load_train_config(recipe_path(model), list(overrides or []))
    result = fit(config, resume=resume, overwrite=overwrite)
    weights_dir = result.best_dir or result.final_dir
    model_name, model = model, create_model(str(weights_dir))
    accuracies = zeroshot_accuracy(model)
    out = Path(config.out_dir)
    weights = export_fp16(model, out / RECIPES[model_name][1])
    report = {
        "zeroshot_top1": accuracies,
        "weights": str(weights),
        "weights_mb": weights.stat().st_size / 2**20,
        "selected": str(weights_dir),
        "steps": result.steps,
        "history": result.history,
    }
    atomic_write_json(out / "pretrain_report.json", report)
    return report
