"""WiSE-FT (Wortsman et al., 2022): weight-space ensembles of a run and its zero-shot start.

For every α, ``θ_α = (1 − α)·θ_zero-shot + α·θ_fine-tuned`` over all weights
(:mod:`starft.models.interpolate`). The zero-shot start is rebuilt from the run's ``config.yaml``
exactly as the training loop built it (``model.name`` / ``pretrained``, after
``torch.manual_seed(seed)``, so even a randomly initialised test model is recovered) and must have
the fine-tuned weights' architecture.

The classifier of a dataset depends on what the run exported:

* a linear head (ft, lp, lpft, ...) for the dataset's classes: the head is interpolated too, with
  the zero-shot head FT starts from (``s0 x`` template-averaged class embeddings of the zero-shot
  model, bias 0), so α = 0 is the zero-shot classifier and α = 1 the fine-tuned one;
* otherwise (flyp, starft, ... or another label space): a zero-shot head rebuilt from the
  *interpolated* text tower, scaled by the interpolated logit scale.

Templates are ``data.eval_templates`` of the run when set, else the evaluated dataset's own, the
same choice ``starft eval`` makes, so α = 0 reproduces ``starft eval`` of the zero-shot model and
α = 1 that of the run's weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from starft.config import TrainConfig, build_dataclass, load_yaml, to_dict
from starft.data import get_templates
from starft.errors import StarftError
from starft.eval.harness import (
    EntryOutcome,
    ModelSubject,
    build_entry_dataset,
    evaluate_entries,
    write_entry_results,
)
from starft.eval.suites import SuiteEntry
from starft.eval.wise_ft_report import plot_wise_ft, write_table
from starft.models import ClipModel, build_zeroshot_head, create_model, is_saved_model
from starft.models.heads import load_head
from starft.models.interpolate import (
    check_alpha,
    check_same_architecture,
    interpolate_state_dicts,
    interpolate_weights,
)
from starft.utils.distributed import DistInfo
from starft.utils.io import atomic_write_json

DEFAULT_ALPHAS: tuple[float, ...] = tuple(i / 10 for i in range(11))
WEIGHTS = ("auto", "best", "final")


@dataclass
class DatasetSpec:
    """A registered dataset and its keyword arguments; ``label`` names it in outputs."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    axis: str | None = None

    def __post_init__(self) -> None:
        self.label = self.label or self.name


@dataclass
class WiseFTResult:
    """What :func:`wise_ft` wrote: one row per (α, dataset) and the summary files."""

    out_dir: Path
    rows: list[dict[str, Any]]
    summary: Path
    table: Path
    plot: Path


def check_alphas(alphas: Sequence[float]) -> list[float]:
    """Distinct numbers in [0, 1], in the given order, else a one-line error."""
    values = [check_alpha(a) for a in alphas]
    if not values:
        raise StarftError("alphas: give at least one value in [0, 1]")
    if len(set(values)) != len(values):
        raise StarftError(f"alphas: duplicate values in {values}")
    return values


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` a run saved as ``config.yaml``."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise StarftError(f"'{run_dir}' is not a run folder: it has no config.yaml")
    return build_dataclass(TrainConfig, load_yaml(path))


def run_weights(run_dir: str | Path, weights: str = "auto") -> Path:
    """The run's ``best/`` or ``final/`` folder (``auto``: best if the run has one, else final)."""
    if weights not in WEIGHTS:
        raise StarftError(f"weights must be one of {', '.join(WEIGHTS)}, got '{weights}'")
    run_dir = Path(run_dir)
    for sub in ("best", "final") if weights == "auto" else (weights,):
        if is_saved_model(run_dir / sub):
            return run_dir / sub
    wanted = "best/ or final/" if weights == "auto" else f"{weights}/"
    raise StarftError(f"run folder '{run_dir}' has no {wanted} weights")


def rebuild_zeroshot(config: TrainConfig, device: torch.device | str = "cpu") -> ClipModel:
    """The run's starting model, as the loop built it (same seed: same random init, if any)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = create_model(
            config.model.name, config.model.pretrained, cache_dir=config.model.cache_dir
        )
    return model.to(device)


def default_datasets(config: TrainConfig) -> list[DatasetSpec]:
    """The run's validation set (``data.val``), labelled as the loop labels it."""
    data = config.data
    if data.val is None:
        raise StarftError(
            "the run has no validation set (data.val) to evaluate on: name a dataset "
            "(--dataset NAME [KEY=VALUE ...])"
        )
    name = data.val_dataset or data.dataset
    return [DatasetSpec(name, dict(data.val), data.val_dataset or f"{data.dataset}-val")]


def _zeroshot_linear_head(
    model: ClipModel, classnames: list[str], templates: list[str], device: Any
) -> dict[str, torch.Tensor]:
    """The head FT starts from: ``s0 x`` normalised class embeddings, bias 0."""
    weights = build_zeroshot_head(model, classnames, templates, device=device)
    return {
        "weight": model.scale().detach().float() * weights,
        "bias": torch.zeros(len(classnames), device=weights.device),
    }


def wise_ft(
    run_dir: str | Path,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    datasets: Sequence[DatasetSpec] | None = None,
    *,
    out_dir: str | Path | None = None,
    weights: str = "auto",
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    dist: DistInfo | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
) -> WiseFTResult:
    """Evaluate ``θ_α`` of run ``run_dir`` for every α on every dataset and write the results.

    Writes under ``out_dir`` (default ``RUN_DIR/wise_ft``): ``results/*.json`` (one per α and
    dataset, :mod:`starft.eval.results` layout, α in ``alpha`` and in the method label),
    ``wise_ft.json`` (summary), ``wise_ft.md`` (table) and ``wise_ft.png`` (accuracy vs α).
    In a multi-rank job every rank must call this; only rank 0 writes.
    """
    alphas = check_alphas(alphas)
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    weights_dir = run_weights(run_dir, weights)
    specs = [DatasetSpec(s.name, dict(s.args), s.label, s.axis) for s in datasets or ()]
    specs = _unique_labels(specs or default_datasets(config))
    info = dist or DistInfo()
    device = torch.device(device)
    finetuned = create_model(str(weights_dir), device=device)
    zeroshot = rebuild_zeroshot(config, device)
    check_same_architecture(
        zeroshot.state_dict(),
        finetuned.state_dict(),
        what=f"the run's weights ({weights_dir}) and its zero-shot model '{config.model.name}'",
    )
    work = create_model(str(weights_dir), device=device)  # receives θ_α
    linear = load_head(weights_dir)
    method = str(config.method.get("name", "unknown"))
    out = Path(out_dir) if out_dir is not None else run_dir / "wise_ft"
    rows: list[dict[str, Any]] = []
    for spec in specs:
        entry = SuiteEntry(
            dataset=spec.name, label=spec.label, args=dict(spec.args), axis=spec.axis
        )
        dataset = build_entry_dataset(entry, finetuned.preprocess_val)
        classnames = list(dataset.classnames)
        templates = (
            get_templates(config.data.eval_templates)
            if config.data.eval_templates
            else list(dataset.templates)
        )
        # The run's linear head applies to its own label space only; others get zero-shot heads.
        ft_head = linear[0] if linear is not None and linear[1] == classnames else None
        zs_head = (
            _zeroshot_linear_head(zeroshot, classnames, templates, device)
            if ft_head is not None
            else None
        )
        for alpha in alphas:
            interpolate_weights(zeroshot, finetuned, alpha, out=work)
            linear_head = None
            if ft_head is not None and zs_head is not None:
                head = nn.Linear(ft_head.in_features, ft_head.out_features)
                head.load_state_dict(interpolate_state_dicts(zs_head, ft_head.state_dict(), alpha))
                linear_head = (head, classnames)
            (outcome,) = evaluate_entries(
                ModelSubject(work, linear_head, templates),
                [entry],
                datasets={entry.label: dataset},
                batch_size=batch_size,
                num_workers=num_workers,
                device=device,
                dist=info,
                progress=progress,
                autocast_dtype=autocast_dtype,
            )
            row = {
                "alpha": alpha,
                "dataset": spec.label,
                "head": "linear" if ft_head is not None else "zeroshot",
                "metrics": outcome.metrics,
                "per_group": outcome.per_group,
            }
            if info.is_main:
                row["result"] = _write_alpha_result(
                    out, config, method, outcome, alpha, weights_dir, row["head"]
                )
            rows.append(row)
    summary, table, plot = out / "wise_ft.json", out / "wise_ft.md", out / "wise_ft.png"
    if info.is_main:
        atomic_write_json(
            summary,
            {
                "run_dir": str(run_dir),
                "weights": str(weights_dir),
                "model": config.model.name,
                "method": method,
                "alphas": alphas,
                "datasets": [{"label": s.label, "name": s.name, "args": s.args} for s in specs],
                "rows": [{k: v for k, v in r.items() if k != "per_group"} for r in rows],
            },
        )
        write_table(rows, table, title=f"WiSE-FT of {run_dir} ({method}, {weights_dir.name}/)")
        plot_wise_ft(rows, plot, title=f"WiSE-FT: {method} ({run_dir.name})")
    return WiseFTResult(out, rows, summary, table, plot)


def _unique_labels(specs: list[DatasetSpec]) -> list[DatasetSpec]:
    """Number repeated labels (``name``, ``name-2``, ...) so outputs never overwrite each other."""
    seen: dict[str, int] = {}
    for spec in specs:
        count = seen.get(spec.label, 0) + 1
        seen[spec.label] = count
        if count > 1:
            spec.label = f"{spec.label}-{count}"
    return specs


def _write_alpha_result(
    out: Path,
    config: TrainConfig,
    method: str,
    outcome: EntryOutcome,
    alpha: float,
    weights_dir: Path,
    head: str,
) -> str:
    label = f"{method}+wise_ft@{alpha:g}"
    (path,) = write_entry_results(
        [outcome],
        out / "results",
        model=config.model.name,
        method=label,
        config={
            **to_dict(config),
            "wise_ft": {
                "alpha": alpha,
                "weights": str(weights_dir),
                "dataset": outcome.entry.dataset,
                "dataset_args": outcome.entry.args,
            },
        },
        seed=config.seed,
        method_config=config.method,
        by_label=True,
        extra={"alpha": alpha, "base_method": method, "head": head},
    )
    return str(path.relative_to(out))
