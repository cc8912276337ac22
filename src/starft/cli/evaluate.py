"""``starft eval``: zero-shot evaluation of a model (pretrained or fine-tuned) on a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model on a dataset",
        description="Evaluate a model with a zero-shot head (class names x templates) and "
        "write one result JSON. --model takes an open_clip/starft model name, a saved model "
        "folder, or a run folder of `starft train` (its best/ weights). KEY=VALUE arguments go "
        "to the dataset "
        "(e.g. path=val.csv root=/data/images).",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--pretrained", help="open_clip pretrained tag or checkpoint file")
    p.add_argument("--dataset", required=True, help="registered dataset (see `starft ls datasets`)")
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
    run_dir = Path(name)
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        parent_config = run_dir.parent / "config.yaml"
        if (run_dir / "open_clip_config.json").is_file() and parent_config.is_file():
            return name, _method_name(parent_config)
        return name, None
    for sub in ("best", "final"):
        if (run_dir / sub / "open_clip_config.json").is_file():
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


def _evaluate(args: argparse.Namespace, info: Any) -> int:
    from starft.config import parse_override
    from starft.data import create_dataset, get_templates
    from starft.eval import (
        build_result,
        evaluate_model,
        result_filename,
        write_predictions_csv,
        write_result,
    )
    from starft.models import create_model
    from starft.models.heads import load_head
    from starft.train.distributed import resolve_autocast, resolve_device

    device = resolve_device(args.device, info)
    weights, inferred_method = resolve_model(args.model)
    model = create_model(weights, args.pretrained, device=device)
    dataset_args: dict[str, Any] = {}
    for text in args.overrides:
        path, value = parse_override(text)
        dataset_args[".".join(path)] = value
    dataset = create_dataset(args.dataset, **dataset_args, transform=model.preprocess_val)
    templates = get_templates(args.templates) if args.templates else None
    metrics, per_group, predictions = evaluate_model(
        model,
        dataset,
        linear_head=load_head(weights) if Path(weights).is_dir() else None,
        templates=templates,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=device,
        dist=info,
        progress=True,
        autocast_dtype=resolve_autocast(args.precision, device),
    )
    if not info.is_main:
        return 0
    method = args.method_label or inferred_method or "zeroshot"
    config = {
        "model": args.model,
        "weights": weights,
        "pretrained": args.pretrained,
        "dataset": args.dataset,
        "dataset_args": dataset_args,
        "templates": args.templates,
    }
    result = build_result(
        model=args.model,
        method=method,
        dataset=args.dataset,
        config=config,
        metrics=metrics,
        per_group=per_group,
        n_samples=metrics["n_samples"],
    )
    out = Path(args.out)
    path = out / result_filename(Path(args.model).name or args.model, method, args.dataset)
    write_result(path, result)
    if args.save_predictions:
        write_predictions_csv(path.with_suffix(".predictions.csv"), predictions)
    _print_metrics(metrics, per_group)
    print(f"result: {path}")
    return 0


def _print_metrics(metrics: dict[str, Any], per_group: dict[str, Any]) -> None:
    for key, value in metrics.items():
        print(f"{key:>16}: {value:.4f}" if isinstance(value, float) else f"{key:>16}: {value}")
    for name, row in per_group.items():
        print(f"{'group ' + name:>16}: {row['acc']:.4f} (n={row['n']})")
