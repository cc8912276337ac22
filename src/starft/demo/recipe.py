"""The demo's experiment definition: a YAML recipe read into a checked :class:`DemoRecipe`.

The packaged recipe (``resources/recipes/sandbox_demo.yaml``) is data, not code, so the defaults
can be re-tuned without touching the runner. Its ``quick`` section is deep-merged over the rest
for ``--quick``, its ``validation`` section for ``--validation`` (every evaluation set re-drawn
from validation seeds, the numbers to tune defaults on); ``key.path=value`` overrides (the same
syntax as ``starft train``) come last.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from starft.config import TrainConfig, apply_overrides, build_dataclass, load_yaml
from starft.errors import StarftError
from starft.eval.suites import ACCURACY_AXES, AXES, SuiteEntry, parse_entries

RECIPE = "recipes/sandbox_demo.yaml"
ZEROSHOT = "zeroshot"
# The five numbers of the --json summary (means over seeds), one per axis and two for groups.
SUMMARY_KEYS = (
    "id_acc",
    "worst_group_acc",
    "avg_group_acc",
    "ood_avg_acc",
    "zeroshot_transfer_acc",
)
# Every accuracy axis (starft.eval.suites.ACCURACY_AXES) needs at least one set so the summary's
# five numbers always exist.
_TOP_KEYS = {
    "extends",
    "model",
    "seeds",
    "methods",
    "eval_batch_size",
    "train",
    "method_configs",
    "evaluation",
    "quick",
    "validation",
}


@dataclass
class DemoRecipe:
    """Everything ``run_demo`` needs besides where to write: model, seeds, methods, sets."""

    model: str
    seeds: list[int]
    methods: list[str]
    eval_batch_size: int
    train: dict[str, Any]
    method_configs: dict[str, dict[str, Any]]
    evaluation: list[SuiteEntry]
    split: str = "test"

    def sets(self, axis: str) -> list[SuiteEntry]:
        return [s for s in self.evaluation if s.axis == axis]

    def method_of(self, run: str) -> str:
        """The registered method behind run name ``run`` (itself unless a variant renames it)."""
        method = self.method_configs.get(run, {}).get("method") or {}
        return str(method.get("name", run)) if isinstance(method, dict) else run

    def run_config(self, run: str) -> dict[str, Any]:
        """The TrainConfig part of run ``run``: a variant's entry merged over its method's.

        So ``star_texture: {method: {name: starft, pool: sandbox_texture}}`` is the recipe's
        ``starft`` run (its λ, decay, ...) with another pool.
        """
        own = self.method_configs.get(run, {})
        method = self.method_of(run)
        if method == run:
            return own
        return deep_merge(self.method_configs.get(method, {}), own)

    def method_params(self, run: str) -> dict[str, Any]:
        """The method options run ``run`` sets (``name`` excluded), for ablation tables."""
        method = self.run_config(run).get("method") or {}
        return {k: v for k, v in method.items() if k != "name"} if isinstance(method, dict) else {}

    def train_config(
        self, method: str, *, seed: int, model: str, out_dir: str | Path
    ) -> TrainConfig:
        """The :class:`TrainConfig` of one fine-tuning run: shared ``train`` + the method's part.

        ``method`` is a run name: a registered method, or a variant the recipe defines in
        ``method_configs`` with ``method.name`` naming the registered method (ablations run one
        method under several names). A registered method the recipe does not mention runs with
        the shared settings and its own defaults, so ``--methods`` accepts every registered method.
        """
        data = deep_merge(self.train, self.run_config(method))
        data = deep_merge(
            data,
            {
                "method": {"name": self.method_of(method)},
                "model": {"name": model},
                "seed": seed,
                "out_dir": str(out_dir),
                # The demo draws one progress bar over all runs; TensorBoard files for nine short
                # runs would only clutter the run folder (metrics.jsonl is still written).
                "log": {"progress": False, "tensorboard": False, "wandb": False},
            },
        )
        return build_dataclass(TrainConfig, data)


def recipe_path() -> Path:
    return Path(str(resources.files("starft") / "resources" / RECIPE))


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_recipe(
    path: str | Path | None = None,
    *,
    quick: bool = False,
    validation: bool = False,
    overrides: list[str] | None = None,
) -> DemoRecipe:
    """Read and check a demo recipe (default: the packaged one).

    ``quick`` merges the recipe's ``quick`` section, ``validation`` its ``validation`` section
    (evaluation sets drawn from validation seeds: what defaults may be tuned on).
    """
    where = str(path) if path is not None else RECIPE
    data = _load_with_base(resolve_recipe(path), where)
    sections = {}
    for key in ("quick", "validation"):
        sections[key] = data.pop(key, None) or {}
        if not isinstance(sections[key], dict):
            raise StarftError(f"demo recipe {where}: '{key}' must be a mapping")
    if quick:
        data = deep_merge(data, sections["quick"])
    if validation:
        if not sections["validation"]:
            raise StarftError(f"demo recipe {where} has no 'validation' section")
        data = deep_merge(data, sections["validation"])
    data = apply_overrides(data, list(overrides or []))
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        known = ", ".join(sorted(_TOP_KEYS))
        raise StarftError(f"demo recipe {where}: unknown key '{unknown[0]}' (known: {known})")
    for key in ("seeds", "methods", "train", "evaluation"):
        if key not in data:
            raise StarftError(f"demo recipe {where}: '{key}' is required")
    seeds = data["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise StarftError(f"demo recipe {where}: 'seeds' must be a non-empty list of integers")
    methods = data["methods"]
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise StarftError(f"demo recipe {where}: 'methods' must be a list of method names")
    method_configs = data.get("method_configs") or {}
    if not isinstance(method_configs, dict) or not all(
        isinstance(v, dict) for v in method_configs.values()
    ):
        raise StarftError(f"demo recipe {where}: 'method_configs' must map methods to mappings")
    if not isinstance(data["train"], dict):
        raise StarftError(f"demo recipe {where}: 'train' must be a mapping of TrainConfig fields")
    return DemoRecipe(
        model=str(data.get("model") or "sandbox-clip"),
        seeds=list(seeds),
        methods=list(methods),
        eval_batch_size=int(data.get("eval_batch_size", 500)),
        train=data["train"],
        method_configs=method_configs,
        evaluation=_eval_sets(data["evaluation"], where),
        split="validation" if validation else "test",
    )


def _load_with_base(path: Path, where: str, depth: int = 0) -> dict[str, Any]:
    """A recipe file merged over the recipe its ``extends`` names (recursively).

    ``extends`` is a packaged recipe's name (``sandbox_demo``) or a path relative to the
    extending file; mappings merge key by key, lists and values replace (see :func:`deep_merge`).
    """
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise StarftError(f"demo recipe {where} must be a mapping")
    base = data.pop("extends", None)
    if base is None:
        return data
    if depth >= 8:
        raise StarftError(f"demo recipe {where}: 'extends' nests too deep (a cycle?)")
    if not isinstance(base, str) or not base:
        raise StarftError(f"demo recipe {where}: 'extends' must name a recipe")
    known = list_recipes()
    base_path = recipe_path().parent / f"{base}.yaml" if base in known else path.parent / base
    if not base_path.is_file():
        raise StarftError(
            f"demo recipe {where}: 'extends: {base}' is neither a packaged recipe "
            f"({', '.join(known)}) nor a file next to it"
        )
    return deep_merge(_load_with_base(base_path, str(base_path), depth + 1), data)


def list_recipes() -> list[str]:
    """Names of the packaged demo recipes (``extends`` and ``--recipe`` accept them).

    The recipes folder also holds training configs (the pretraining recipe); a demo recipe is
    one that defines evaluation sets or extends another recipe.
    """
    names = []
    for file in sorted(recipe_path().parent.glob("*.yaml")):
        data = load_yaml(file)
        if "evaluation" in data or "extends" in data:
            names.append(file.stem)
    return names


def resolve_recipe(path: str | Path | None) -> Path:
    """A recipe file: ``path`` itself, or the packaged demo recipe of that name."""
    if path is None:
        return recipe_path()
    if Path(path).is_file():
        return Path(path)
    packaged, known = recipe_path().parent / f"{path}.yaml", list_recipes()
    if str(path) in known and packaged.is_file():
        return packaged
    raise StarftError(
        f"demo recipe '{path}' is neither a file nor a packaged recipe ({', '.join(known)})"
    )


def _eval_sets(data: Any, where: str) -> list[SuiteEntry]:
    """The evaluation entries: suite entries by label (the suite YAML format), each with an axis."""
    sets = list(parse_entries(data, f"demo recipe {where}", key="evaluation"))
    for entry in sets:
        if entry.axis is None:
            raise StarftError(
                f"demo recipe {where}: evaluation.{entry.label}.axis must be one of "
                f"{', '.join(AXES)}"
            )
    present = {s.axis for s in sets}
    missing = [axis for axis in ACCURACY_AXES if axis not in present]
    if missing:
        raise StarftError(f"demo recipe {where}: no evaluation set for axis '{missing[0]}'")
    groups = [s.label for s in sets if s.axis == "group"]
    if len(groups) > 1:
        raise StarftError(
            f"demo recipe {where}: one group-shift set expected, got {', '.join(groups)}"
        )
    ids = [s.label for s in sets if s.axis == "id"]
    if len(ids) > 1:
        raise StarftError(f"demo recipe {where}: one ID test set expected, got {', '.join(ids)}")
    return sets
