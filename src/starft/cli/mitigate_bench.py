"""``starft mitigate-bench``: RaVL's mitigation table on a sandbox marker setting.

Fine-tunes the stage-1 model (FLYP) on the marker setting, runs discovery on it, chooses ravl's
region_weight on a validation draw, fine-tunes every mitigation method from the stage-1 model for
every seed and scores each with image and region accuracy (overall and worst-group) on a test
draw. Writes ``mitigation.json`` and ``mitigation.md``.
"""

from __future__ import annotations

import argparse
import shlex


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mitigate-bench",
        help="RaVL's mitigation table (ft, upsampled_ft, flyp, vl_gdro, ravl) on a sandbox "
        "marker setting",
        description="Fine-tune the model with FLYP on one sandbox marker setting (stage 1), run "
        "discovery on it (a validation draw of sandbox_markers_eval), choose ravl's "
        "region_weight on that draw, fine-tune ft, upsampled_ft, flyp (VL-ERM), vl_gdro and "
        "ravl from the stage-1 model for every seed, and report image and region accuracy, "
        "overall and worst-group, on a test draw (mean ± std over seeds). Defaults: "
        "resources/discovery/mitigation.yaml (or --config); KEY=VALUE arguments override any "
        "key (dotted: train.optim.epochs=1, seeds=[0], test.n=200). See docs/discovery.md.",
    )
    p.add_argument("--config", help="a config file of the same shape (default: the packaged)")
    p.add_argument("--out", help="folder for mitigation.json, mitigation.md and the runs")
    p.add_argument(
        "--keep-weights", action="store_true", help="keep every mitigation run's weights"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the stage-1 model, discovery and every run already made with the same configs",
    )
    p.add_argument("--show", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import yaml

    from starft.discovery_bench.mitigation_config import load_mitigation_config
    from starft.errors import StarftError

    overrides = list(args.overrides)
    config = load_mitigation_config(args.config, overrides)
    if args.show:
        print(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), end="")
        return 0
    if not args.out:
        raise StarftError("mitigate-bench: --out is required (except with --show)")
    from starft.discovery_bench.mitigation import run_mitigation_bench

    def status(text: str) -> None:
        print(text, flush=True)

    words = ["starft", "mitigate-bench", "--out", str(args.out)]
    if args.config:
        words += ["--config", args.config]
    bench = run_mitigation_bench(
        config,
        args.out,
        keep_weights=args.keep_weights,
        resume=args.resume,
        status=status,
        command=shlex.join([*words, *overrides]),
    )
    document = bench.document
    if not document["discovery"]["found"]:
        print("discovery found no spurious cluster: ravl ran with no spurious regions")
    selection = document["region_weight"]
    if selection is not None:
        chosen, by = selection["chosen"], selection["select_by"]
        print(f"ravl region_weight: {chosen:g} (on validation {by})")
    for method, stats in document["summary"].items():
        wg = stats["image_worst_group"]["mean"]
        rwg = stats["region_worst_group"]["mean"]
        print(
            f"  {method}: image worst-group {'-' if wg is None else f'{wg:.3f}'}, "
            f"region worst-group {'-' if rwg is None else f'{rwg:.3f}'}"
        )
    print(f"report: {bench.paths['report']} ({bench.seconds / 60:.1f} min)")
    return 0
