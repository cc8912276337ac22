"""``starft eval``: evaluate a model (pretrained or fine-tuned) on a dataset or a whole suite.

``--dataset NAME`` evaluates one registered dataset (KEY=VALUE arguments and ``--root`` go to it);
``--suite NAME`` evaluates every dataset of a suite found under ``--root`` (one result JSON each,
plus ``suite_<name>.json`` and ``.md``), skipping missing ones with a warning.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model on a dataset or a suite of datasets",
        description="Evaluate a model with a zero-shot head (class names x templates), or its "
        "trained linear head when it has one for the dataset's classes, and write one result "
        "JSON per dataset. --model takes any model name (open_clip/starft, hf:PATH_OR_ID, "
        "hf-hub:ORG/NAME; see `starft ls models`), a saved model folder, or a run folder of "
        "`starft train` (its best/ weights). KEY=VALUE arguments go "
        "to the dataset (e.g. path=val.csv split=train). --suite evaluates every dataset of a "
        "suite (see `starft ls suites`) found under --root; see docs/datasets.md for layouts.",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--pretrained", help="open_clip pretrained tag or checkpoint file")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--dataset", help="registered dataset (see `starft ls datasets`)")
    what.add_argument("--suite", help="suite name (see `starft ls suites`) or suite YAML file")
    p.add_argument("--root", help="dataset folder, or the folder holding the suite's datasets")
    p.add_argument(
        "--dataset-root",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="suite only: root for one dataset (by name or suite label), repeatable",
    )
    p.add_argument(
        "--no-projection",
        action="store_true",
        help="score the dataset's own classes, not the ImageNet space (IN-R/-A, ObjectNet)",
    )
    p.add_argument("--templates", help="template set name or file (default: the dataset's)")
    p.add_argument("--method-label", help="method name recorded in the result (default: inferred)")
    p.add_argument("--out", default="results", help="folder for the result JSON (default: results)")
    p.add_argument("--save-predictions", action="store_true", help="also write per-sample CSV")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dataset arguments")
    p.set_defaults(run=run)


def resolve_model(name: str) -> tuple[str, str | None]:
    """A run folder -> (its best/ or final/ weights, its method name); anything else unchanged."""
    from starft.models import is_saved_model

    run_dir = Path(name)
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        parent_config = run_dir.parent / "config.yaml"
        if is_saved_model(run_dir) and parent_config.is_file():
            return name, _method_name(parent_config)
        return name, None
    for sub in ("best", "final"):
        if is_saved_model(run_dir / sub):
            return str(run_dir / sub), _method_name(config_file)
    from starft.errors import StarftError

    raise StarftError(f"run folder '{run_dir}' has no best/ or final/ weights yet")


def _method_name(config_file: Path) -> str | None:
    from starft.config import load_yaml

    method = load_yaml(config_file).get("method") or {}
    return method.get("name") if isinstance(method, dict) else None


def run(args: argparse.Namespace) -> int:
    from starft.train.distributed import init_distributed, shutdown_distributed

    info = init_distributed()
    try:
        return _evaluate(args, info)
    finally:
        shutdown_distributed()


def _eval_kwargs(args: argparse.Namespace, info: Any, device: Any) -> dict[str, Any]:
    """The ``evaluate_model`` options from the command line, the same for a dataset and a suite."""
    from starft.train.distributed import resolve_autocast

    return {
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "device": device,
        "dist": info,
        "progress": True,
        "autocast_dtype": resolve_autocast(args.precision, device),
    }


def _templates(args: argparse.Namespace) -> list[str] | None:
    """``--templates`` read as a template list; None keeps each dataset's own."""
    from starft.data import get_templates

    return get_templates(args.templates) if args.templates else None


def _load_model(args: argparse.Namespace, info: Any) -> tuple[Any, str, str | None, Any, Any]:
    from starft.models import create_model
    from starft.models.heads import load_head
    from starft.train.distributed import resolve_device

    device = resolve_device(args.device, info)
    weights, inferred_method = resolve_model(args.model)
    model = create_model(weights, args.pretrained, device=device)
    head = load_head(weights) if Path(weights).is_dir() else None
    return model, weights, inferred_method, head, device


def _evaluate(args: argparse.Namespace, info: Any) -> int:
    from starft.errors import StarftError
    from starft.utils.io import check_output_dir

    # Before any model or data is loaded: a whole evaluation must not end in "cannot write".
    check_output_dir(args.out, "--out folder")
    if args.suite is not None:
        if args.overrides:
            raise StarftError(
                f"--suite takes no dataset arguments (got {args.overrides[0]!r}); put them in "
                "the suite file's 'args'"
            )
        if not args.root:
            raise StarftError("--suite needs --root, the folder that holds the datasets")
        if args.no_projection:
            raise StarftError("--no-projection is for --dataset; a suite sets it per entry")
        return _evaluate_suite(args, info)
    if args.dataset_root:
        raise StarftError("--dataset-root is for --suite; use --root for one dataset")
    return _evaluate_dataset(args, info)


def _evaluate_dataset(args: argparse.Namespace, info: Any) -> int:
    import sys

    from starft.config import parse_flat_overrides
    from starft.data.label_space import eval_label_space, read_training_classes
    from starft.eval.harness import (
        AUTO_PROJECTION,
        ModelSubject,
        build_entry_dataset,
        entry_projection,
        evaluate_entries,
        write_entry_results,
    )
    from starft.eval.suites import SuiteEntry

    model, weights, inferred_method, head, device = _load_model(args, info)
    dataset_args: dict[str, Any] = {"root": args.root} if args.root else {}
    dataset_args.update(parse_flat_overrides(args.overrides))
    # One dataset is a one-entry suite: the same path as suites, training and the demo.
    entry = SuiteEntry(
        dataset=args.dataset,
        label=args.dataset,
        args=dataset_args,
        projection=None if args.no_projection else AUTO_PROJECTION,
    )
    dataset = build_entry_dataset(entry, model.preprocess_val)
    label_space = ""
    if (
        entry_projection(entry, dataset) is None
        and not args.no_projection
        and Path(weights).is_dir()
    ):
        # A fine-tuned model scores a dataset with a subset of its training classes over all
        # of them (by name), as its run's validation did.
        training = head[1] if head is not None else read_training_classes(weights)
        dataset, label_space = eval_label_space(dataset, training)
        if label_space and info.is_main:
            print(f"starft: {label_space}", file=sys.stderr)
    (outcome,) = evaluate_entries(
        ModelSubject(model, head, _templates(args)),
        [entry],
        datasets={entry.label: dataset},
        **_eval_kwargs(args, info, device),
    )
    if not info.is_main:
        return 0
    method = args.method_label or inferred_method or "zeroshot"
    run_config = _run_config(args.model)
    (path,) = write_entry_results(
        [outcome],
        args.out,
        model=args.model,
        method=method,
        config={
            "model": args.model,
            "weights": weights,
            "pretrained": args.pretrained,
            "templates": args.templates,
            "label_space": label_space or "the dataset's classes",
        },
        seed=run_config.get("seed"),
        method_config=run_config.get("method"),
        file_label=Path(args.model).name or args.model,
        save_predictions=args.save_predictions,
    )
    _print_metrics(outcome.metrics, outcome.per_group)
    print(f"result: {path}")
    return 0


def _run_config(name: str) -> dict[str, Any]:
    """The ``config.yaml`` of the run folder ``name`` (or of the run holding it), else empty."""
    from starft.config import load_yaml

    for folder in (Path(name), Path(name).parent):
        if (folder / "config.yaml").is_file():
            data = load_yaml(folder / "config.yaml")
            return data if isinstance(data, dict) else {}
    return {}


def _evaluate_suite(args: argparse.Namespace, info: Any) -> int:
    import sys

    from starft.config import parse_flat_overrides
    from starft.errors import StarftError
    from starft.eval import load_suite, run_suite, summary_markdown

    suite = load_suite(args.suite)
    roots = {key: str(value) for key, value in parse_flat_overrides(args.dataset_root).items()}
    model, weights, inferred_method, head, device = _load_model(args, info)
    method = args.method_label or inferred_method or "zeroshot"

    def warn(message: str) -> None:
        if info.is_main:
            print(f"starft: warning: {message}", file=sys.stderr)

    run_config = _run_config(args.model)
    summary = run_suite(
        suite,
        model,
        root=args.root,
        out=args.out,
        model_label=Path(args.model).name or args.model,
        method=method,
        dataset_roots=roots,
        templates=_templates(args),
        linear_head=head,
        config={
            "model": args.model,
            "weights": weights,
            "pretrained": args.pretrained,
            "root": args.root,
            "templates": args.templates,
        },
        save_predictions=args.save_predictions,
        write=info.is_main,
        warn=warn,
        seed=run_config.get("seed"),
        method_config=run_config.get("method"),
        **_eval_kwargs(args, info, device),
    )
    if not info.is_main:
        return 0
    if all(entry["status"] != "ok" for entry in summary["entries"]):
        raise StarftError(
            f"suite {suite.name}: none of its datasets could be evaluated under '{args.root}' "
            "(see the warnings above and docs/datasets.md for the expected layouts)"
        )
    print(summary_markdown(summary), end="")
    print(f"summary: {Path(args.out) / ('suite_' + suite.name + '.json')}")
    return 0


def _print_metrics(metrics: dict[str, Any], per_group: dict[str, Any]) -> None:
    for key, value in metrics.items():
        print(f"{key:>16}: {value:.4f}" if isinstance(value, float) else f"{key:>16}: {value}")
    for name, row in per_group.items():
        print(f"{'group ' + name:>16}: {row['acc']:.4f} (n={row['n']})")
