"""``starft demo``: the sandbox benchmark of zero-shot, FT, FLYP and StarFT on every axis."""

from starft.demo.recipe import (
    SUMMARY_KEYS,
    ZEROSHOT,
    DemoRecipe,
    load_recipe,
    recipe_path,
)
from starft.demo.report import findings, markdown_table, summary, text_table, write_report
from starft.demo.runner import (
    DEFAULT_MODEL,
    DemoResult,
    GroupInfo,
    check_methods,
    resolve_demo_model,
    run_demo,
)
from starft.report import RunRecord

__all__ = [
    "DEFAULT_MODEL",
    "SUMMARY_KEYS",
    "ZEROSHOT",
    "DemoRecipe",
    "DemoResult",
    "GroupInfo",
    "RunRecord",
    "check_methods",
    "findings",
    "load_recipe",
    "markdown_table",
    "recipe_path",
    "resolve_demo_model",
    "run_demo",
    "summary",
    "text_table",
    "write_report",
]
