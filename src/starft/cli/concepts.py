"""``starft concepts generate|show``: CFT concept banks (weighted visual concepts per class)."""

from __future__ import annotations

import argparse

from starft.cli.lm_args import add_lm_arguments, cache_path, open_lm, sampling, split_words


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "concepts",
        help="generate or show CFT concept banks",
        description="Weighted visual concepts per class for concept-guided fine-tuning "
        "(see docs/pools.md).",
    )
    actions = p.add_subparsers(dest="concepts_action", required=True, metavar="ACTION")
    gen = actions.add_parser("generate", help="ask a language model for a concept bank")
    gen.add_argument("--classes", required=True, help="class names (one per line or a JSON list)")
    gen.add_argument("--per-class", type=int, default=10, help="concepts per class")
    gen.add_argument("--max-rounds", type=int, default=3, help="answers per class at most")
    gen.add_argument("--overlap-threshold", type=float, default=0.8, help="word-overlap dedupe")
    add_lm_arguments(gen, "concept bank file to write (JSON)")
    gen.set_defaults(run=run_generate)

    show = actions.add_parser("show", help="validate a concept bank and print it")
    show.add_argument("file", metavar="FILE")
    show.set_defaults(run=run_show)


def run_generate(args: argparse.Namespace) -> int:
    from starft.generation import (
        generate_concept_bank,
        load_prompts,
        read_classnames,
        write_concept_bank,
    )

    classnames = read_classnames(args.classes)
    generated = generate_concept_bank(
        open_lm(args),
        classnames,
        per_class=args.per_class,
        max_rounds=args.max_rounds,
        prompts=load_prompts(args.prompts),
        domain=args.domain,
        sampling=sampling(args),
        forbidden=split_words(args.forbid),
        overlap_threshold=args.overlap_threshold,
    )
    path = write_concept_bank(args.out, generated)
    calls = generated.provenance["calls"]
    n = sum(generated.provenance["final"].values())
    print(
        f"concept bank: {path} ({n} concepts for {len(classnames)} classes; answers: "
        f"{calls['answers_from_model']} new, {calls['answers_from_cache']} cached in "
        f"{cache_path(args)})"
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from starft.data.concept_bank import load_concept_bank

    bank = load_concept_bank(args.file)
    for classname, concepts in bank.items():
        items = ", ".join(f"{c.concept} ({c.weight:g})" for c in concepts)
        print(f"{classname}: {items}")
    print(f"ok: {args.file}: {sum(len(v) for v in bank.values())} concepts, {len(bank)} classes")
    return 0
