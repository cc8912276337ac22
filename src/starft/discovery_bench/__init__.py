"""``starft discover-bench``: does discovery find a spurious feature the model really learned?

Fine-tunes the sandbox CLIP on marker settings (class x Cramér's V x marker kind x method), runs
:mod:`starft.discovery` on each, and scores the ranked regions against the markers' boxes next to
Random and image-level baselines. It sits above ``discovery``, ``train`` and ``methods`` (it trains
models), so that ``methods`` (RaVL's stage 2) can import ``discovery`` without a cycle.
"""

from starft.discovery_bench.run import run_bench

__all__ = ["run_bench"]
