"""How close each region fast path is to crop-and-encode (cosine of the normalised embeddings).

For ``--n`` sandbox validation images and a fixed set of boxes per image (the full image, its four
quadrants, the centre half, the left and top halves), prints per box kind the mean and minimum
cosine between ``region_features(method="fast")`` and ``region_features(method="crop")``::

    python bench/region_fidelity.py --model sandbox-clip
    python bench/region_fidelity.py --model starft-tiny-vit
    python bench/region_fidelity.py --model hf:PATH_TO_A_SAVED_CLIP_OR_SIGLIP
"""

from __future__ import annotations

import argparse
import json

import torch


def boxes_for(height: int, width: int) -> dict[str, list[float]]:
    h, w = float(height), float(width)
    return {
        "full": [0, 0, w, h],
        "quadrant": [0, 0, w / 2, h / 2],
        "quadrant_br": [w / 2, h / 2, w, h],
        "centre_half": [w / 4, h / 4, 3 * w / 4, 3 * h / 4],
        "left_half": [0, 0, w / 2, h],
        "top_half": [0, 0, w, h / 2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sandbox-clip")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from starft.data import create_dataset
    from starft.models import create_model

    torch.manual_seed(args.seed)
    model = create_model(args.model).eval()
    data = create_dataset("sandbox_val", n=args.n, transform=model.preprocess_val)
    images = torch.stack([data[i]["image"] for i in range(args.n)])
    kinds = boxes_for(*images.shape[-2:])
    boxes = [torch.tensor(list(kinds.values()))] * args.n
    with torch.no_grad():
        crop = model.region_features(images, boxes, method="crop")
        fast = model.region_features(images, boxes, method="fast")
    cosine = (crop * fast).sum(-1).view(args.n, len(kinds))
    rows = {
        kind: {
            "mean": round(cosine[:, i].mean().item(), 4),
            "min": round(cosine[:, i].min().item(), 4),
        }
        for i, kind in enumerate(kinds)
    }
    print(json.dumps({"model": args.model, "backend": model.backend, "n": args.n, "cosine": rows}))


if __name__ == "__main__":
    main()
