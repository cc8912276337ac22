"""``starft pools generate|show|validate``: spurious descriptor pools from a language model."""

from __future__ import annotations

import argparse
import sys

from starft.cli.lm_args import add_lm_arguments, cache_path, open_lm, sampling, split_words


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pools",
        help="generate, show or validate StarFT descriptor pools",
        description="Spurious descriptor pools for method.pool=FILE.json (see docs/pools.md).",
    )
    actions = p.add_subparsers(dest="pools_action", required=True, metavar="ACTION")
    gen = actions.add_parser(
        "generate",
        help="ask a language model for a pool (the StarFT paper's two stages)",
        description="Stage 1 asks the model for spurious concepts (--concepts auto), stage 2 for "
        "descriptors of each; the answers are cached, cleaned and written with provenance.",
    )
    add_lm_arguments(gen, "pool file to write (JSON)")
    pool = gen.add_argument_group("pool")
    pool.add_argument(
        "--concepts",
        default="auto",
        help="'auto' (ask the model) or comma-separated concepts, e.g. background,texture",
    )
    pool.add_argument("--num-concepts", type=int, default=3, help="auto: concepts kept")
    pool.add_argument("--per-concept", type=int, default=30, help="descriptors per concept")
    pool.add_argument("--per-call", type=int, default=15, help="descriptors asked per answer")
    pool.add_argument("--max-rounds", type=int, default=4, help="answers per concept at most")
    pool.add_argument(
        "--classes", help="class names (one per line or a JSON list): never in a descriptor"
    )
    pool.add_argument(
        "--overlap-threshold",
        type=float,
        default=0.8,
        help="near-duplicate word overlap (Jaccard; above 1 disables)",
    )
    pool.add_argument(
        "--cosine-threshold",
        type=float,
        default=0.95,
        help="near-duplicate embedding cosine with --target-model (above 1 disables)",
    )
    _add_target_arguments(pool)
    gen.set_defaults(run=run_generate)

    show = actions.add_parser("show", help="print a pool file's provenance and descriptors")
    show.add_argument("file", metavar="FILE")
    show.add_argument("--counts-only", action="store_true", help="do not list the descriptors")
    show.add_argument(
        "--dropped", action="store_true", help="list what each filter removed, and why"
    )
    show.set_defaults(run=run_show)

    val = actions.add_parser(
        "validate", help="check a pool file as training reads it, and that it is clean"
    )
    val.add_argument("file", metavar="FILE")
    val.add_argument("--classes", help="class names that must not appear")
    val.add_argument("--forbid", default="", help="comma-separated forbidden words")
    _add_target_arguments(val)
    val.set_defaults(run=run_validate)


def _add_target_arguments(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--target-model",
        help="the model the pool is for (starft/open_clip name or folder): descriptors must fit "
        "its text context and are deduplicated by its text embeddings",
    )
    group.add_argument("--pretrained", help="pretrained tag or checkpoint of --target-model")
    group.add_argument(
        "--template", default="a photo of a {}.", help="clean-caption template of the task"
    )


def _target(args: argparse.Namespace, classnames: list[str]):
    if not args.target_model:
        return None
    from starft.generation import TargetText
    from starft.models import create_model

    model = create_model(args.target_model, args.pretrained)
    return TargetText(model, args.template, classnames)


def run_generate(args: argparse.Namespace) -> int:
    from starft.generation import generate_pool, load_prompts, read_classnames, write_pool

    classnames = read_classnames(args.classes) if args.classes else []
    target = _target(args, classnames)
    if target is None:
        print(
            "starft: note: no --target-model: the context-length and embedding filters are skipped",
            file=sys.stderr,
        )
    client = open_lm(args)
    concepts = None if args.concepts.strip() == "auto" else split_words(args.concepts)
    generated = generate_pool(
        client,
        concepts=concepts,
        num_concepts=args.num_concepts,
        per_concept=args.per_concept,
        per_call=args.per_call,
        max_rounds=args.max_rounds,
        prompts=load_prompts(args.prompts),
        domain=args.domain,
        sampling=sampling(args),
        classnames=classnames,
        forbidden=split_words(args.forbid),
        target=target,
        overlap_threshold=args.overlap_threshold,
        cosine_threshold=args.cosine_threshold,
    )
    path = write_pool(args.out, generated)
    calls = generated.provenance["calls"]
    final = ", ".join(f"{c} {n}" for c, n in generated.provenance["final"].items())
    print(
        f"pool: {path} ({final}; answers: {calls['answers_from_model']} new, "
        f"{calls['answers_from_cache']} cached in {cache_path(args)})"
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from starft.generation import describe_pool

    print(describe_pool(args.file, show_descriptors=not args.counts_only, dropped=args.dropped))
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from starft.errors import StarftError
    from starft.generation import read_classnames, read_pool_file, validate_pool_file

    classnames = read_classnames(args.classes) if args.classes else []
    problems = validate_pool_file(
        args.file, _target(args, classnames), classnames, split_words(args.forbid)
    )
    for problem in problems:
        print(problem)
    if problems:
        raise StarftError(f"pool file '{args.file}': {len(problems)} problem(s), listed above")
    pools, _ = read_pool_file(args.file)
    total = sum(len(v) for v in pools.values())
    print(f"ok: {args.file}: {total} descriptors in {len(pools)} concept(s)")
    return 0
