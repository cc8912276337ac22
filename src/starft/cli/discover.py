"""``starft discover``: find the image regions a model wrongly relies on (RaVL stage 1).

Loads a model and a dataset, embeds every image's regions, clusters them, keeps the clusters whose
presence flips accuracy between classes and drives errors, names them from a vocabulary with the
model's text tower, and writes ``report.md``, ``discovery.json`` and one PNG per cluster into
``--out``; ``--export-pool FILE`` writes the names as a StarFT pool.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_VOCABULARY = "all"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "discover",
        help="discover learned spurious regions (RaVL) and name them",
        description="Embed the regions of every image of a dataset (a k x k grid, or the boxes "
        "its samples carry), cluster them (K-medoids, K by silhouette) and keep the clusters "
        "whose presence raises accuracy for one class and lowers it for another and that hold "
        "the region driving the model's errors (see docs/discovery.md). KEY=VALUE arguments go "
        "to the dataset. Writes report.md, discovery.json and cluster_<rank>.png into --out; "
        "finding nothing is a result, reported plainly (exit 0).",
    )
    p.add_argument("--model", required=True, help="model name, saved model or run folder")
    p.add_argument("--pretrained", help="open_clip pretrained tag or checkpoint file")
    p.add_argument("--dataset", required=True, help="registered dataset (`starft ls datasets`)")
    p.add_argument("--root", help="dataset folder")
    p.add_argument("--out", required=True, help="folder for report.md, discovery.json, PNGs")
    what = p.add_argument_group("regions and scores")
    what.add_argument(
        "--regions", default="grid:2", help="grid:K (k x k cells) or boxes (the samples' boxes)"
    )
    what.add_argument(
        "--region-method",
        default="crop",
        help="crop: crop-and-encode (the reference); fast: the backbone's one-pass path; auto: "
        "fast where the model has one",
    )
    what.add_argument(
        "--scoring",
        default="model",
        help="zero-shot scale: model (the model's own) or ravl (RaVL's fixed 1/0.07)",
    )
    what.add_argument("--k-range", help="A:B tries K = A..B (default 2C..5C-1, C classes)")
    what.add_argument("--seed", type=int, default=0, help="k-medoids++ seed (0 = the release)")
    what.add_argument("--max-images", type=int, help="use only the first N images")
    names = p.add_argument_group("naming")
    names.add_argument(
        "--vocabulary",
        action="append",
        metavar="SPEC",
        help="descriptors to name clusters with, repeatable: a pool name, a pool JSON file, a "
        f"word list file or sandbox_world (default: {DEFAULT_VOCABULARY})",
    )
    names.add_argument(
        "--word-template", default="{} with {word}.", help="descriptor for a word list's words"
    )
    names.add_argument("--subject", default="a photo", help="caption put into each descriptor")
    names.add_argument("--top-descriptors", type=int, default=5, help="names kept per cluster")
    names.add_argument(
        "--naming-score",
        default="cosine",
        help="cosine (to the cluster's mean region) or contrast (minus the cosine to the mean of "
        "all regions: names what sets the cluster apart)",
    )
    names.add_argument("--export-pool", metavar="FILE", help="write the names as a StarFT pool")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dataset arguments")
    p.set_defaults(run=run)


def _check_args(args: argparse.Namespace) -> None:
    """Cheap checks before the model loads."""
    from starft.discovery.clustering import parse_k_range
    from starft.discovery.inputs import parse_regions
    from starft.discovery.naming import NAMING_SCORES
    from starft.discovery.vocabulary import check_word_template
    from starft.discovery.zeroshot import SCORINGS
    from starft.errors import StarftError
    from starft.models.protocol import REGION_METHODS

    parse_regions(args.regions)
    for name, value, known in (
        ("--region-method", args.region_method, REGION_METHODS),
        ("--scoring", args.scoring, SCORINGS),
        ("--naming-score", args.naming_score, NAMING_SCORES),
    ):
        if value not in known:
            raise StarftError(f"{name} must be one of {', '.join(known)}, got '{value}'")
    parse_k_range(args.k_range)
    check_word_template(args.word_template)
    for name, value in (
        ("--top-descriptors", args.top_descriptors),
        ("--batch-size", args.batch_size),
    ):
        if value < 1:
            raise StarftError(f"{name} must be >= 1, got {value}")
    if args.max_images is not None and args.max_images < 1:
        raise StarftError(f"--max-images must be >= 1, got {args.max_images}")
    if args.export_pool and Path(args.export_pool).suffix.lower() != ".json":
        raise StarftError(f"--export-pool {args.export_pool}: a pool file must end in .json")


def run(args: argparse.Namespace) -> int:
    from starft.cli.evaluate import resolve_model
    from starft.config import parse_flat_overrides
    from starft.data import create_dataset
    from starft.discovery import compute_discovery_inputs, discover_from_inputs
    from starft.discovery.clustering import parse_k_range
    from starft.discovery.vocabulary import load_vocabulary
    from starft.models import create_model
    from starft.train.distributed import resolve_device
    from starft.utils.distributed import DistInfo

    _check_args(args)
    vocab_specs = args.vocabulary or [DEFAULT_VOCABULARY]
    device = resolve_device(args.device, DistInfo())
    weights, _ = resolve_model(args.model)
    model = create_model(weights, args.pretrained, device=device)
    dataset_args: dict[str, Any] = {"root": args.root} if args.root else {}
    dataset_args.update(parse_flat_overrides(args.overrides))
    dataset = create_dataset(args.dataset, **dataset_args, transform=model.preprocess_val)
    # The vocabulary is read before the long part, so a bad file fails fast.
    vocabulary = load_vocabulary(
        vocab_specs, word_template=args.word_template, exclude=dataset.classnames
    )
    count = len(dataset.labels)
    indices = range(min(count, args.max_images)) if args.max_images else None
    inputs = compute_discovery_inputs(
        model,
        dataset,
        regions=args.regions,
        method=args.region_method,
        scoring=args.scoring,
        indices=indices,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=device,
    )
    result = discover_from_inputs(inputs, k_range=parse_k_range(args.k_range), seed=args.seed)
    names = _names(args, model, inputs, result, vocabulary, device)
    config = {
        "model": args.model,
        "weights": weights,
        "pretrained": args.pretrained,
        "dataset": args.dataset,
        "dataset_args": dataset_args,
        "regions": args.regions,
        "region_method": args.region_method,
        "scoring": args.scoring,
        "k_range": args.k_range,
        "seed": args.seed,
        "max_images": args.max_images,
        "vocabulary": vocab_specs,
        "vocabulary_size": len(vocabulary),
        "vocabulary_dropped": vocabulary.dropped,
        "word_template": args.word_template,
        "subject": args.subject,
        "top_descriptors": args.top_descriptors,
        "naming_score": args.naming_score,
        "pool": None,
    }
    if args.export_pool and result.found:
        config["pool"] = str(_export_pool(args, names, result, config))
    from starft.discovery.report import REPORT_NAME, write_report

    write_report(
        args.out,
        model=model,
        dataset=dataset,
        inputs=inputs,
        result=result,
        names=names,
        config=config,
    )
    _print_summary(result, names, args, config)
    print(f"report: {Path(args.out) / REPORT_NAME}")
    return 0


def _names(
    args: argparse.Namespace, model: Any, inputs: Any, result: Any, vocabulary: Any, device: Any
) -> list[Any]:
    from starft.discovery.naming import descriptor_embeddings, name_clusters

    if not result.found:
        return []
    text = descriptor_embeddings(model, vocabulary.descriptors, subject=args.subject, device=device)
    return name_clusters(
        inputs.region_embeddings,
        [cluster.regions.tolist() for cluster in result.clusters],
        text,
        vocabulary.descriptors,
        top=args.top_descriptors,
        score=args.naming_score,
    )


def _export_pool(
    args: argparse.Namespace, names: list[Any], result: Any, config: dict[str, Any]
) -> Path:
    import datetime

    from starft.discovery.naming import pool_from_names, write_pool_file

    concepts = [f"cluster_{rank}" for rank in range(1, len(result.clusters) + 1)]
    pools = pool_from_names(names, concepts)
    provenance = {
        "generator": "starft discover",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": config["model"],
        "backend": "text-tower naming of discovered clusters",
        "sampling": "none (cosine ranking)",
        "concepts": {"source": "discovered clusters", "names": list(pools)},
        "dataset": config["dataset"],
        "dataset_args": config["dataset_args"],
        "vocabulary": config["vocabulary"],
        "subject": config["subject"],
        "naming_score": config["naming_score"],
        "clusters": [
            {
                "concept": concept,
                "cluster": cluster.cluster,
                "gap": cluster.gap,
                "influence": cluster.influence,
                "names": [n.to_dict() for n in scored],
            }
            for concept, cluster, scored in zip(concepts, result.clusters, names)
        ],
    }
    return write_pool_file(args.export_pool, pools, provenance)


def _print_summary(
    result: Any, names: list[Any], args: argparse.Namespace, config: dict[str, Any]
) -> None:
    if not result.found:
        print(result.message)
        if args.export_pool:
            print(f"no pool written to {args.export_pool}: there is no cluster to name")
        return
    print(result.message)
    for rank, cluster in enumerate(result.clusters, 1):
        top = names[rank - 1][0].descriptor if names and names[rank - 1] else "-"
        print(
            f"{rank}. cluster {cluster.cluster}: gap {cluster.gap:.3f}, influence "
            f"{cluster.influence:.3f}, {len(cluster.regions)} regions; name: {top}"
        )
    if config["pool"]:
        print(f"pool: {config['pool']}")
