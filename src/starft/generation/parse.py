"""Turn a language model's free-text answer into list items (and weighted items).

Models answer lists in many shapes: one item per line, numbered or bulleted, comma-separated on
one line, or as JSON. All are accepted; an answer with no item at all is the caller's error.
"""

from __future__ import annotations

import json
import math
import re

# "1. x", "1) x", "- x", "* x", "• x", "(a) x" at the start of a line.
_MARKER = re.compile(r"^\s*(?:[-*•·–—]+|\(?\d{1,3}[.):]|\(?[a-zA-Z][.)])\s+")
# "concept: 3", "concept - 3", "concept (3)", "concept, weight 3", "concept = 3.5"
_WEIGHTED = re.compile(
    r"^(?P<concept>.+?)\s*(?:[:=,|–—-]|\()\s*(?:weight\s*[:=]?\s*)?"
    r"(?P<weight>\d+(?:\.\d+)?)\s*(?:/\s*\d+)?\s*\)?\s*\.?$",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def _json_payload(answer: str) -> object | None:
    text = _FENCE.sub("", answer.strip()).strip()
    if not text.startswith(("[", "{")):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _strip_item(line: str) -> str:
    line = _MARKER.sub("", line).strip()
    # Markdown emphasis and surrounding quotes are presentation, not content.
    line = line.strip("*_`").strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
        line = line[1:-1].strip()
    return line


def parse_list(answer: str) -> list[str]:
    """Items of a list answer, in order; a single line with commas is split at the commas."""
    payload = _json_payload(answer)
    if isinstance(payload, list):
        return [str(x).strip() for x in payload if isinstance(x, str) and x.strip()]
    lines = [
        _strip_item(line)
        for line in _FENCE.sub("", answer.strip()).splitlines()
        if line.strip() and not line.strip().endswith(":")  # "Here are 5 descriptors:" headers
    ]
    lines = [line for line in lines if line]
    if len(lines) == 1 and "," in lines[0] and "{}" not in lines[0]:
        lines = [_strip_item(part) for part in lines[0].split(",")]
    return [line for line in lines if line]


def parse_weighted(answer: str) -> list[tuple[str, float | None]]:
    """``(concept, weight)`` pairs of a weighted list; weight None where none could be read.

    Accepts ``concept: 3`` lines (and ``-``, ``=``, ``(3)`` variants), a JSON object
    ``{"concept": 3}`` or a JSON list of ``{"concept": ..., "weight": ...}``.
    """
    payload = _json_payload(answer)
    if isinstance(payload, dict):
        return [(str(k), _number(v)) for k, v in payload.items()]
    if isinstance(payload, list):
        pairs: list[tuple[str, float | None]] = []
        for item in payload:
            if isinstance(item, dict) and isinstance(item.get("concept"), str):
                pairs.append((item["concept"], _number(item.get("weight"))))
            elif isinstance(item, str):
                pairs.append((item, None))
        return pairs
    pairs = []
    for line in _FENCE.sub("", answer.strip()).splitlines():
        item = _strip_item(line)
        if not item or item.endswith(":"):
            continue
        match = _WEIGHTED.match(item)
        if match:
            pairs.append((_strip_item(match["concept"]), _number(match["weight"])))
        else:
            pairs.append((item, None))
    return pairs


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
