"""The output of ``starft discover``: ``discovery.json``, ``report.md`` and a PNG per cluster.

``discovery.json`` holds the full result (every cluster's scores, the chosen K and silhouettes),
every image and region (dataset index, label, prediction, pixel box, owning image), and per
discovered cluster its names and top regions. ``report.md`` says in words what was found, or
plainly that nothing was, and why.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starft.discovery.discover import DiscoveredCluster, DiscoveryResult
from starft.discovery.figures import TOP_CROPS, plot_cluster, region_crops
from starft.discovery.inputs import DiscoveryInputs
from starft.discovery.naming import DescriptorScore
from starft.models import ClipModel
from starft.utils.io import atomic_write_json, atomic_write_text, git_hash

if TYPE_CHECKING:
    from starft.data.base import ClassificationDataset

SCHEMA = "starft.discovery/1"
JSON_NAME = "discovery.json"
REPORT_NAME = "report.md"


def figure_name(rank: int) -> str:
    return f"cluster_{rank}.png"


def _top_regions(
    cluster: DiscoveredCluster, inputs: DiscoveryInputs, count: int
) -> list[dict[str, Any]]:
    rows = []
    for region in cluster.regions[:count].tolist():
        image = int(inputs.region_image[region])
        rows.append(
            {
                "region": region,
                "image": image,
                "dataset_index": int(inputs.image_indices[image]),
                "box": [round(float(v), 3) for v in inputs.region_boxes[region]],
                "box_label": None
                if inputs.region_labels is None
                else int(inputs.region_labels[region]),
            }
        )
    return rows


def medoid_record(inputs: DiscoveryInputs, result: DiscoveryResult) -> dict[str, Any] | None:
    """Every medoid of the chosen clustering with its embedding, and which clusters passed.

    Stage 2 (method ``ravl``) assigns new regions to the nearest of *all* K medoids and treats a
    region as spurious when that cluster passed; ``None`` when clustering was degenerate.
    """
    if result.medoids is None:
        return None
    medoids = [int(m) for m in result.medoids]
    return {
        "embed_dim": int(inputs.region_embeddings.shape[1]),
        "region_method": inputs.method,
        "regions": inputs.regions,
        "medoid_regions": medoids,
        "embeddings": inputs.region_embeddings[medoids].float().tolist(),
        "spurious_clusters": [int(c.cluster) for c in result.clusters],
    }


def discovery_document(
    inputs: DiscoveryInputs,
    result: DiscoveryResult,
    names: Sequence[Sequence[DescriptorScore]],
    classnames: Sequence[str],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON-ready record of one discovery run (see the module docstring)."""
    from starft import __version__

    clusters = []
    for rank, cluster in enumerate(result.clusters, 1):
        clusters.append(
            {
                "rank": rank,
                "cluster": cluster.cluster,
                "gap": cluster.gap,
                "influence": cluster.influence,
                "size": int(cluster.score.size),
                "n_images": len(cluster.images),
                "names": [n.to_dict() for n in names[rank - 1]] if names else [],
                "top_regions": _top_regions(cluster, inputs, TOP_CROPS),
                "figure": figure_name(rank),
            }
        )
    return {
        "schema": SCHEMA,
        "starft_version": __version__,
        "git_hash": git_hash(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": dict(config),
        "classnames": list(classnames),
        "found": result.found,
        "message": result.message,
        "clusters": clusters,
        "result": result.to_dict(),
        "images": {
            "dataset_index": inputs.image_indices.tolist(),
            "label": inputs.image_labels.tolist(),
            "prediction": inputs.image_probs.argmax(dim=1).tolist(),
        },
        "medoids": medoid_record(inputs, result),
        "regions": {
            "spec": inputs.regions,
            "method": inputs.method,
            "image_size": list(inputs.image_size),
            "image": inputs.region_image.tolist(),
            "box": [[round(float(v), 3) for v in box] for box in inputs.region_boxes],
            "box_label": None if inputs.region_labels is None else inputs.region_labels.tolist(),
        },
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return "—"
    return f"{value:.{digits}f}"


def report_markdown(document: Mapping[str, Any], result: DiscoveryResult) -> str:
    """``report.md`` from a :func:`discovery_document` and its result."""
    config = document["config"]
    classnames = document["classnames"]
    images = document["images"]
    correct = sum(p == y for p, y in zip(images["prediction"], images["label"]))
    n_images = len(images["label"])
    lines = [
        f"# Discovery: {config.get('model')} on {config.get('dataset')}",
        "",
        f"- images: {n_images} (zero-shot accuracy {correct / n_images:.3f}), "
        f"classes: {len(classnames)}",
        f"- regions: {len(document['regions']['image'])} ({document['regions']['spec']}, "
        f"embedded by {document['regions']['method']})",
        f"- zero-shot scoring: {result.scoring} (scale {_fmt(result.scale, 2)})",
        f"- clustering: K = {result.k} (silhouette {_fmt(result.silhouette)}), "
        f"K tried: {', '.join(map(str, result.silhouettes)) or 'none'}, seed {config.get('seed')}",
        "",
    ]
    if not result.found:
        lines += [f"**No spurious cluster found.** {result.message}.", ""]
    else:
        lines += [f"**{result.message}**, ranked by performance gap.", ""]
    for entry, cluster in zip(document["clusters"], result.clusters):
        lines += _cluster_section(entry, cluster, classnames)
    if result.scores:
        lines += [
            "## Every cluster",
            "",
            "| cluster | regions | gap | candidate | influence | passes |",
            "|---|---|---|---|---|---|",
        ]
        for score in result.scores:
            lines.append(
                f"| {score.cluster} | {score.size} | {_fmt(score.gap)} | "
                f"{'yes' if score.candidate else 'no'} | {_fmt(score.influence)} | "
                f"{'yes' if score.passes else 'no'} |"
            )
        lines.append("")
    if config.get("pool"):
        lines += [f"Exported pool: `{config['pool']}` (train with `method.pool=FILE`).", ""]
    return "\n".join(lines)


def _cluster_section(
    entry: Mapping[str, Any], cluster: DiscoveredCluster, classnames: Sequence[str]
) -> list[str]:
    lines = [
        f"## {entry['rank']}. Cluster {cluster.cluster}",
        "",
        f"Gap {_fmt(cluster.gap)}, influence {_fmt(cluster.influence)}, "
        f"{entry['size']} regions in {entry['n_images']} images.",
        "",
    ]
    if entry["names"]:
        named = ", ".join(f"`{n['descriptor']}` ({n['score']:.3f})" for n in entry["names"])
        lines += [f"Names: {named}", ""]
    lines += [
        "| class | images with | without | acc. with | acc. without | G |",
        "|---|---|---|---|---|---|",
    ]
    for row in cluster.gaps.values():
        lines.append(
            f"| {classnames[row.label]} | {row.n_in} | {row.n_out} | {row.acc_in:.3f} | "
            f"{row.acc_out:.3f} | {row.gap:+.3f} |"
        )
    lines += ["", f"![cluster {entry['rank']}]({entry['figure']})", ""]
    return lines


def write_report(
    out_dir: str | Path,
    *,
    model: ClipModel,
    dataset: ClassificationDataset,
    inputs: DiscoveryInputs,
    result: DiscoveryResult,
    names: Sequence[Sequence[DescriptorScore]],
    config: Mapping[str, Any],
) -> dict[str, Path]:
    """Write the PNGs, ``discovery.json`` and ``report.md`` (in that order) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = discovery_document(inputs, result, names, dataset.classnames, config)
    written: dict[str, Path] = {}
    for entry, cluster in zip(document["clusters"], result.clusters):
        regions = [row["region"] for row in entry["top_regions"]]
        crop_labels = [
            f"#{row['dataset_index']} {dataset.classnames[int(inputs.image_labels[row['image']])]}"
            for row in entry["top_regions"]
        ]
        written[entry["figure"]] = plot_cluster(
            out / entry["figure"],
            title=f"{entry['rank']}. cluster {cluster.cluster}: gap {cluster.gap:.3f}, "
            f"influence {_fmt(cluster.influence)}, {entry['size']} regions",
            crops=region_crops(model, dataset, inputs, regions),
            crop_labels=crop_labels,
            cluster=cluster,
            classnames=dataset.classnames,
            names=names[entry["rank"] - 1] if names else (),
        )
    atomic_write_json(out / JSON_NAME, document)
    atomic_write_text(out / REPORT_NAME, report_markdown(document, result))
    written[JSON_NAME] = out / JSON_NAME
    written[REPORT_NAME] = out / REPORT_NAME
    return written
