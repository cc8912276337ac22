"""CFT concept banks: weighted visual concepts per class, kept as JSON.

Format (``_``-keys such as ``_provenance`` are comments)::

    {"waterbird": [{"concept": "webbed feet", "weight": 3.0},
                   {"concept": "long neck", "weight": 2.0}],
     "landbird": [{"concept": "bird beak", "weight": 3.0}, ...]}

A concept's weight scales its mask when masks are combined (``max_c w_c · mask_c``), so it must be
a finite positive number; every class needs at least one concept.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starft.errors import StarftError


@dataclass(frozen=True)
class WeightedConcept:
    concept: str
    weight: float

    def to_json(self) -> dict[str, Any]:
        return {"concept": self.concept, "weight": self.weight}


def parse_concept_bank(data: object, where: str) -> dict[str, list[WeightedConcept]]:
    """Validate a parsed bank (see the module docstring); ``where`` names it in errors."""
    if not isinstance(data, dict):
        raise StarftError(f"{where}: must hold a JSON object of class -> list of concepts")
    bank: dict[str, list[WeightedConcept]] = {}
    for classname, items in data.items():
        if str(classname).startswith("_"):
            continue
        if not isinstance(items, list) or not items:
            raise StarftError(f"{where}: class '{classname}' must hold a non-empty list")
        concepts: list[WeightedConcept] = []
        for i, item in enumerate(items):
            at = f"{where}: class '{classname}' entry {i}"
            if not isinstance(item, dict) or set(item) != {"concept", "weight"}:
                raise StarftError(f"{at} must be an object with 'concept' and 'weight'")
            concept, weight = item["concept"], item["weight"]
            if not isinstance(concept, str) or not concept.strip():
                raise StarftError(f"{at}: 'concept' must be a non-empty string")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise StarftError(f"{at}: 'weight' must be a number, got {weight!r}")
            if not math.isfinite(weight) or weight <= 0:
                raise StarftError(f"{at}: 'weight' must be finite and > 0, got {weight!r}")
            if any(c.concept == concept for c in concepts):
                raise StarftError(f"{at}: concept '{concept}' is listed twice")
            concepts.append(WeightedConcept(concept, float(weight)))
        bank[str(classname)] = concepts
    if not bank:
        raise StarftError(f"{where}: holds no class")
    return bank


def load_concept_bank(path: str | Path) -> dict[str, list[WeightedConcept]]:
    """The concept bank in a JSON file, validated (class -> weighted concepts, in file order)."""
    where = f"concept bank '{path}'"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise StarftError(f"cannot read {where}: {error}") from None
    except json.JSONDecodeError as error:
        raise StarftError(f"{where} is not valid JSON: {error}") from None
    return parse_concept_bank(data, where)
