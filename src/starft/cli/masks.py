"""``starft masks build``: concept masks from a concept bank, a detector and a segmenter."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "masks",
        help="build concept masks for a dataset (detector + segmenter)",
        description="Concept masks for concept-guided fine-tuning (see docs/explain.md).",
    )
    actions = p.add_subparsers(dest="masks_action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="ground each image's class concepts into one weighted mask",
        description="Per image: the concepts of its class from --concepts (a concept bank "
        "JSON), boxes from an open-vocabulary --detector (a local OWLv2, OWL-ViT or "
        "GroundingDINO folder), one mask per box from a --segmenter (a local SAM folder), "
        "masks outside the coverage range dropped, combined as max_c(w_c*mask_c)/max_c w_c. "
        "Writes OUT/masks/ (mask_format=soft), OUT/kept.csv, OUT/report.json; a re-run "
        "skips the images already done. KEY=VALUE arguments go to the dataset.",
    )
    build.add_argument("--dataset", required=True, help="registered dataset (csv, imagefolder)")
    build.add_argument("--root", help="dataset folder")
    build.add_argument("--concepts", required=True, help="concept bank JSON (class -> concepts)")
    build.add_argument("--detector", required=True, help="local detector folder")
    build.add_argument("--segmenter", required=True, help="local segmenter folder")
    build.add_argument("--out", required=True, help="output folder (re-runs resume)")
    build.add_argument("--box-threshold", type=float, default=0.35)
    build.add_argument("--text-threshold", type=float, default=0.65, help="GroundingDINO only")
    build.add_argument("--min-coverage", type=float, default=0.001)
    build.add_argument("--max-coverage", type=float, default=0.98)
    build.add_argument("--max-boxes", type=int, default=5, help="boxes per concept at most")
    build.add_argument("--device", default="auto")
    build.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dataset arguments")
    build.set_defaults(run=run_build)


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_build(args: argparse.Namespace) -> int:
    from starft.config import parse_flat_overrides
    from starft.data import create_dataset
    from starft.data.concept_bank import load_concept_bank
    from starft.masks import (
        DetectionThresholds,
        GroundingOptions,
        build_masks,
        load_detector,
        load_segmenter,
    )
    from starft.masks.grounders import model_type
    from starft.train.distributed import resolve_device
    from starft.utils.distributed import DistInfo
    from starft.utils.io import check_output_dir

    # Every cheap check before any model loads.
    check_output_dir(args.out)
    thresholds = DetectionThresholds(box=args.box_threshold, text=args.text_threshold)
    options = GroundingOptions(args.min_coverage, args.max_coverage, args.max_boxes)
    bank = load_concept_bank(args.concepts)
    model_type(args.detector, "--detector")
    model_type(args.segmenter, "--segmenter")
    dataset_args: dict[str, Any] = {"root": args.root} if args.root else {}
    dataset_args.update(parse_flat_overrides(args.overrides))
    dataset = create_dataset(args.dataset, **dataset_args)
    settings = {
        "dataset": args.dataset,
        "dataset_args": {k: str(v) for k, v in dataset_args.items()},
        "concepts": str(Path(args.concepts).resolve()),
        "concepts_sha256": _sha256(args.concepts),
        "detector": str(Path(args.detector).resolve()),
        "segmenter": str(Path(args.segmenter).resolve()),
        "thresholds": {"box": thresholds.box, "text": thresholds.text},
    }
    device = resolve_device(args.device, DistInfo())
    detector = load_detector(args.detector, thresholds, device)
    segmenter = load_segmenter(args.segmenter, device)

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"masks: {done}/{total} images", flush=True)

    report = build_masks(
        dataset,
        bank,
        detector,
        segmenter,
        args.out,
        options=options,
        settings=settings,
        progress=progress,
    )
    reasons = ", ".join(f"{n} {why}" for why, n in report.reasons.items()) or "none"
    print(
        f"masks: {report.kept} of {report.images} images kept ({report.built_now} built now, "
        f"{report.from_cache} from the cache); rejected: {reasons}; masks dropped by the "
        f"coverage gate: {report.masks_rejected.get('too small', 0)} too small, "
        f"{report.masks_rejected.get('too large', 0)} too large"
    )
    root = getattr(dataset, "root", "ROOT")
    out = Path(args.out)
    print(
        f"train on them: --dataset csv data.train.path={out / 'kept.csv'} data.train.root={root} "
        f"data.train.mask_root={out / 'masks'} data.train.mask_format=soft"
    )
    return 0
