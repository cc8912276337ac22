"""``starft ls KIND``: what exists (models, methods, datasets, suites, metrics, pools, ...)."""

from __future__ import annotations

import argparse

KINDS = ("models", "methods", "datasets", "suites", "metrics", "pools", "templates")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ls", help="list registered models, methods, datasets, suites, metrics, pools or templates"
    )
    p.add_argument("kind", choices=KINDS)
    p.set_defaults(run=run)


def rows(kind: str) -> list[tuple[str, str]]:
    if kind == "models":
        from starft.models import list_models

        return list_models()
    if kind == "methods":
        from starft.methods import METHODS

        return [(e.name, e.description) for e in METHODS]
    if kind == "datasets":
        from starft.data import DATASETS

        return [(e.name, e.description) for e in DATASETS]
    if kind == "suites":
        from starft.eval.suites import SUITES

        return [(e.name, e.description) for e in SUITES]
    if kind == "metrics":
        from starft.eval.metric_registry import METRICS

        return [
            (
                e.name,
                f"{e.description} ({'higher' if e.obj.higher_is_better else 'lower'} is better)",
            )
            for e in METRICS.in_order()
        ]
    if kind == "pools":
        from starft.data import list_pools, load_pool

        return [(name, f"{len(load_pool(name))} descriptors") for name in list_pools()]
    from starft.data import get_templates, list_template_sets

    return [(name, f"{len(get_templates(name))} templates") for name in list_template_sets()]


def run(args: argparse.Namespace) -> int:
    table = rows(args.kind)
    width = max((len(name) for name, _ in table), default=0)
    for name, description in table:
        print(f"{name:<{width}}  {description}")
    return 0
