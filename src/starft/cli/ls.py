"""``starft ls KIND [NAME]``: what exists (models, methods, datasets, suites, metrics, pools, ...).

With a NAME, ``methods`` prints the method's config fields (type, default, one-line help) and
``datasets`` the dataset's arguments (type, default) after its description.
"""

from __future__ import annotations

import argparse
import inspect
from typing import Any

KINDS = ("models", "methods", "datasets", "suites", "metrics", "pools", "templates")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ls", help="list registered models, methods, datasets, suites, metrics, pools or templates"
    )
    p.add_argument("kind", choices=KINDS)
    p.add_argument("name", nargs="?", help="methods/datasets: print this one's fields or arguments")
    p.set_defaults(run=run)


def rows(kind: str) -> list[tuple[str, str]]:
    if kind == "models":
        from starft.models import list_backends, list_models

        backends = [(f"backend {name}", text) for name, text in list_backends()]
        return [*backends, *list_models()]
    if kind == "methods":
        from starft.method_configs import METHOD_CONFIGS

        return [(e.name, e.description) for e in METHOD_CONFIGS]
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


def method_details(name: str) -> list[str]:
    """Lines for ``starft ls methods NAME``: description, then one row per config field."""
    from starft.method_configs import METHOD_CONFIGS, describe_fields

    entry = METHOD_CONFIGS.entry(name)
    header = [f"{name}: {entry.description}", f"set with method.FIELD=VALUE (method.name={name})"]
    rows = [("field", "type", "default", "help"), *describe_fields(entry.obj)]
    return header + _table(rows)


def dataset_details(name: str) -> list[str]:
    """Lines for ``starft ls datasets NAME``: description, docstring, one row per argument."""
    from starft.data import DATASETS

    entry = DATASETS.entry(name)
    lines = [f"{name}: {entry.description}"]
    doc = inspect.getdoc(entry.obj) or ""
    lines += [f"  {line}" if line else "" for line in doc.splitlines()]
    rows: list[tuple[str, ...]] = [("argument", "type", "default")]
    for param in inspect.signature(entry.obj).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        rows.append((param.name, _annotation(param.annotation), _default(param.default)))
    lines.append(f"set with data.train.ARG=VALUE / data.val.ARG=VALUE (data.dataset={name})")
    return lines + _table(rows)


def _annotation(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")


def _default(default: Any) -> str:
    return "(required)" if default is inspect.Parameter.empty else repr(default)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
        for row in rows
    ]


def run(args: argparse.Namespace) -> int:
    from starft.errors import StarftError

    if args.name is not None:
        if args.kind == "methods":
            lines = method_details(args.name)
        elif args.kind == "datasets":
            lines = dataset_details(args.name)
        else:
            raise StarftError(f"`starft ls {args.kind}` takes no NAME (only methods and datasets)")
        print("\n".join(line.rstrip() for line in lines))
        return 0
    table = rows(args.kind)
    width = max((len(name) for name, _ in table), default=0)
    for name, description in table:
        print(f"{name:<{width}}  {description}")
    return 0
