"""``starft explain``: relevance maps of several models side by side, and their alignment."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="relevance maps of one or more models on a dataset's images",
        description="Explain the first --n images of a dataset with each --model (any model "
        "name, saved folder or run folder): gradient-weighted attention rollout for ViTs, "
        "Grad-CAM for CNNs, of the zero-shot logit of the true label, the prediction or a free "
        "text. Writes OUT/grid.png (the image, its mask if any, then each model's overlay), "
        "OUT/explain.json (targets, predictions, and alignment metrics when the samples carry "
        "masks) and, with --save-maps, OUT/maps/<model>/<index>.npy. KEY=VALUE arguments go to "
        "the dataset. See docs/explain.md.",
    )
    p.add_argument("--model", action="append", required=True, help="repeat for each model")
    p.add_argument("--dataset", required=True, help="registered dataset (`starft ls datasets`)")
    p.add_argument("--root", help="dataset folder")
    p.add_argument("--n", type=int, default=16, help="how many images (the first N; default 16)")
    p.add_argument(
        "--target",
        default="pred",
        help='label, pred (default) or text:"SOME TEXT"',
    )
    p.add_argument("--method", default="auto", choices=("auto", "rollout", "gradcam"))
    p.add_argument("--stage", type=int, help="Grad-CAM stage (default: last with >= 7x7 cells)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--save-maps", action="store_true", help="also write each map as .npy")
    p.add_argument("--device", default="auto")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dataset arguments")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from starft.cli.evaluate import resolve_model
    from starft.config import parse_flat_overrides
    from starft.data import create_dataset
    from starft.explain.run import explain_dataset, parse_target, write_explain_run
    from starft.models import create_model
    from starft.train.distributed import resolve_device
    from starft.utils.distributed import DistInfo

    parse_target(args.target)  # a bad target stops before any model loads
    device = resolve_device(args.device, DistInfo())
    dataset_args: dict[str, Any] = {"root": args.root} if args.root else {}
    dataset_args.update(parse_flat_overrides(args.overrides))
    models = []
    labels = _labels(args.model)
    for name, label in zip(args.model, labels):
        weights, _ = resolve_model(name)
        models.append((label, create_model(weights)))

    def make_dataset(model: Any) -> Any:
        return create_dataset(args.dataset, **dataset_args, transform=model.preprocess_val)

    result = explain_dataset(
        models,
        make_dataset,
        n=args.n,
        target=args.target,
        method=args.method,
        stage=args.stage,
        device=device,
    )
    written = write_explain_run(result, args.out, save_maps=args.save_maps)
    for entry in result.models:
        if entry.metrics is not None:
            shown = ", ".join(
                f"{k} {v:.3f}" for k, v in entry.metrics.items() if isinstance(v, float)
            )
            print(f"{entry.label}: {shown}")
    print(f"grid: {written[0]}")
    return 0


#: The weight folders a training run writes: a column titled "best" would not say which run.
WEIGHT_FOLDERS = ("best", "final")


def _labels(names: list[str]) -> list[str]:
    """Column titles: the folder or model name (a run's ``best``/``final`` folder is titled by its
    run), made unique."""
    labels: list[str] = []
    for name in names:
        path = Path(name)
        base = path.name or name
        if base in WEIGHT_FOLDERS and path.parent.name:
            base = f"{path.parent.name}/{base}"
        label, k = base, 2
        while label in labels:
            label, k = f"{base} ({k})", k + 1
        labels.append(label)
    return labels
