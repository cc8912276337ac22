"""RaVL stage 2: nearest-medoid assignment, the ravl method, the group baselines, region metrics."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from starft.config import OptimConfig
from starft.discovery.assign import SpuriousMedoids
from starft.discovery.inputs import grid_pixel_boxes
from starft.discovery.report import SCHEMA, medoid_record
from starft.errors import StarftError
from starft.eval.metrics import compute_metrics
from starft.eval.regions import mask_boxes, mitigation_metrics
from starft.losses import GroupDROLoss, region_text_losses
from starft.methods import PrepareContext, StepInfo, Task, create_method
from starft.methods.group_robust import inverse_frequency_weights
from starft.models import create_model
from starft.train.optim import build_optimizer
from starft.train.sampling import seeded_generator

CLASSES = ["dog", "cat", "fish", "bird"]
TEMPLATES = ["a photo of a {}."]


def _document(embeddings, spurious, method="crop"):
    return {
        "schema": SCHEMA,
        "medoids": {
            "embed_dim": len(embeddings[0]),
            "region_method": method,
            "regions": "grid:2",
            "medoid_regions": list(range(len(embeddings))),
            "embeddings": embeddings,
            "spurious_clusters": spurious,
        },
    }


def _write(tmp_path, document):
    path = tmp_path / "discovery.json"
    path.write_text(json.dumps(document))
    return str(path)


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(n, 3, 32, 32, generator=g),
        "label": torch.tensor([i % len(CLASSES) for i in range(n)]),
        "group": torch.tensor([2 * (i % len(CLASSES)) + (i // len(CLASSES)) % 2 for i in range(n)]),
    }


def _info(step=0):
    return StepInfo(step, 0, 10, 10, seeded_generator(0, step))


def _make(name, params=None):
    torch.manual_seed(0)
    return create_method(name, create_model("starft-tiny-vit"), Task(CLASSES, TEMPLATES), params)


# -- assignment by nearest medoid ---------------------------------------------------------------
def test_regions_go_to_the_nearest_medoid_and_are_spurious_only_in_kept_clusters():
    medoids = SpuriousMedoids.from_document(
        _document([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]], [1]), "mem"
    )
    regions = F.normalize(
        torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.1], [0.1, 0.3, 0.9], [1.0, 1.0, 0.0]]), dim=1
    )
    # cos to medoid 0 and 1 tie for the last region: the lowest cluster id wins
    assert medoids.assign(regions).tolist() == [0, 1, 2, 0]
    assert medoids.is_spurious(regions).tolist() == [False, True, False, False]


def test_discovery_file_problems_are_named(tmp_path):
    with pytest.raises(StarftError, match="not found"):
        SpuriousMedoids.load(tmp_path / "none.json")
    with pytest.raises(StarftError, match="'medoids' is missing"):
        SpuriousMedoids.load(_write(tmp_path, {"schema": SCHEMA, "medoids": None}))
    with pytest.raises(StarftError, match="spurious_clusters"):
        SpuriousMedoids.load(_write(tmp_path, _document([[1.0, 0.0]], [3])))
    medoids = SpuriousMedoids.load(_write(tmp_path, _document([[1.0, 0.0]], [0])))
    with pytest.raises(StarftError, match="2 dimensions but the model embeds in 3"):
        medoids.check_dim(3)


def test_discovery_json_records_every_medoid_embedding():
    embeddings = F.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    inputs = SimpleNamespace(region_embeddings=embeddings, method="crop", regions="grid:2")
    result = SimpleNamespace(medoids=[4, 1], clusters=[SimpleNamespace(cluster=1)])
    record = medoid_record(inputs, result)
    medoids = SpuriousMedoids.from_document({"schema": SCHEMA, "medoids": record}, "mem")
    assert torch.allclose(medoids.embeddings, embeddings[[4, 1]], atol=1e-6)
    assert medoids.spurious.tolist() == [False, True]
    assert medoid_record(inputs, SimpleNamespace(medoids=None, clusters=[])) is None


# -- the region-aware loss: spurious regions only as negatives ----------------------------------
def test_hand_computed_loss_with_a_spurious_region_only_in_the_denominators():
    # τ = 1, 2-d: image 0 (class 0) has a kept region at 0° and a spurious one on class 0's text;
    # image 1 (class 1) a kept region at 90°. The spurious region is never a positive.
    regions = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    valid = torch.tensor([[True, True], [True, False]])
    spurious = torch.tensor([[False, True], [False, False]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    loss_r, loss_a = region_text_losses(
        regions, texts, labels, spurious, valid, temperature=1.0, reduction="sum"
    )
    e = math.e
    # L_R rows: the spurious region adds max_j e(r, j) = e to both denominators
    assert loss_r.item() == pytest.approx(2 * -math.log(e / (2 * e + 1)), abs=1e-6)
    # L_A: row 0 adds e(r_s, t_0) = e, row 1 adds e(r_s, t_1) = 1
    expected_a = -math.log(e / (e + 1 + e)) - math.log(e / (e + 1 + 1))
    assert loss_a.item() == pytest.approx(expected_a, abs=1e-6)
    # Marking the same region non-spurious makes it a positive and removes it as a negative.
    loss_r2, _ = region_text_losses(
        regions, texts, labels, torch.zeros_like(spurious), valid, temperature=1.0, reduction="sum"
    )
    assert loss_r2.item() < loss_r.item() - 0.1


def test_a_spurious_region_closer_to_its_class_raises_the_loss():
    g = torch.Generator().manual_seed(3)
    regions = F.normalize(torch.randn(4, 3, 8, generator=g), dim=-1)
    texts = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    labels = torch.arange(4)
    spurious = torch.zeros(4, 3, dtype=torch.bool)
    spurious[0, 2] = True
    base = sum(region_text_losses(regions, texts, labels, spurious))
    moved = regions.clone()
    moved[0, 2] = texts[0]  # the spurious region now matches its own caption perfectly
    assert sum(region_text_losses(moved, texts, labels, spurious)).item() > base.item() + 0.1
    every = torch.ones_like(spurious)
    every[1:, 0] = False  # image 0 has only spurious regions: it contributes no row
    loss_r, _ = region_text_losses(regions, texts, labels, every, reduction="sum")
    rows = [
        region_text_losses(regions, texts, labels, every, reduction="mean")[0].item() * 3,
        loss_r.item(),
    ]
    assert rows[0] == pytest.approx(rows[1], rel=1e-5)


# -- the ravl method ----------------------------------------------------------------------------
def test_ravl_loss_is_flyp_plus_weighted_region_terms_and_no_region_is_spurious_by_default():
    method = _make("ravl", {"region_weight": 0.5, "template_mode": "fixed"})
    data = _batch()
    out = method(data, _info())
    assert out["spurious_regions"].item() == 0.0
    captions = method.class_captions(data, _info())
    text = F.normalize(method.model.encode_text(method.model.tokenize(captions)), dim=-1)
    boxes = [grid_pixel_boxes(2, method.model.image_size)] * 8
    regions = method.model.region_features(data["image"], boxes, method="crop").reshape(8, 4, -1)
    loss_r, loss_a = region_text_losses(
        regions, text, data["label"], torch.zeros(8, 4, dtype=torch.bool), temperature=0.07
    )
    assert torch.allclose(out["region_to_text"], loss_r, atol=1e-4)
    assert torch.allclose(out["text_to_region"], loss_a, atol=1e-4)
    assert torch.allclose(out["loss"], out["contrastive"] + 0.5 * (loss_r + loss_a), atol=1e-4)


def _frozen_discovery(tmp_path, method, data, spurious_cells):
    """A discovery file whose medoids are the starting model's embeddings of image 0's cells."""
    boxes = [grid_pixel_boxes(2, method.model.image_size)]
    with torch.no_grad():
        cells = method.model.region_features(data["image"][:1], boxes, method="crop")
    return _write(tmp_path, _document(cells.tolist(), spurious_cells))


def test_ravl_assigns_regions_under_a_frozen_copy_of_the_starting_model(tmp_path):
    data = _batch()
    path = _frozen_discovery(tmp_path, _make("ravl"), data, [1, 3])
    method = _make("ravl", {"discovery": path})
    boxes = method.regions.boxes(data)
    flags = method.regions.flags(data["image"], boxes).reshape(8, 4)
    assert flags[0].tolist() == [False, True, False, True]  # each cell is its own medoid
    with torch.no_grad():  # training moves the model, never the assignment
        for param in method.model.parameters():
            param.add_(0.1)
    assert torch.equal(method.regions.flags(data["image"], boxes).reshape(8, 4), flags)
    trainable = {id(p) for _, p in method.trainable_named_parameters()}
    assert all(id(p) not in trainable for p in method.regions.parameters())
    # one step with spurious regions in the batch lowers the loss
    method.train()
    optimizer = build_optimizer(method.trainable_named_parameters(), OptimConfig(lr=1e-4))
    before = method(data, _info())
    assert 0 < before["spurious_regions"].item() < 1
    before["loss"].backward()
    optimizer.step()
    assert method(data, _info())["loss"].item() < before["loss"].item()


def test_ravl_boxes_need_the_boxes_field():
    method = _make("ravl", {"regions": "boxes"})
    with pytest.raises(StarftError, match="no 'boxes' field"):
        method(_batch(), _info())
    with pytest.raises(StarftError, match="grid:K"):
        _make("ravl", {"regions": "quadrants"})


# -- group DRO and upsampling -------------------------------------------------------------------
def test_group_dro_weights_move_toward_the_worst_group():
    dro = GroupDROLoss(num_groups=3, step_size=0.5)
    losses = torch.tensor([1.0, 1.0, 3.0, 2.0])
    groups = torch.tensor([0, 0, 1, 1])  # group means 1.0 and 2.5; group 2 absent
    out = dro(losses, groups)
    assert out["robust"].item() == pytest.approx((1.0 + 2.5) / 3, rel=1e-6)  # uniform q first
    dro.update()
    raw = torch.tensor([math.exp(0.5 * 1.0), math.exp(0.5 * 2.5), 1.0])
    assert torch.allclose(dro.weights, raw / raw.sum(), atol=1e-6)
    assert dro.weights.argmax().item() == 1
    out = dro(losses, groups)
    expected = (raw[0] * 1.0 + raw[1] * 2.5) / raw.sum()
    assert out["robust"].item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(StarftError, match="group id 5"):
        dro(losses, torch.tensor([0, 0, 5, 1]))


def test_vl_gdro_updates_its_weights_once_per_optimiser_step():
    method = _make("vl_gdro", {"step_size": 10.0})
    method.train()
    out = method(_batch(), _info())
    assert out["max_group_weight"].item() == pytest.approx(1 / 8)
    out["loss"].backward()
    method.after_optimizer_step(_info())
    assert method.dro.weights.max().item() > 1 / 8 + 1e-3
    state = method.training_state()
    fresh = _make("vl_gdro")
    fresh.load_training_state(state)
    assert torch.equal(fresh.dro.log_weights, method.dro.log_weights)


def test_upsampled_ft_weights_groups_by_inverse_training_frequency():
    weights = inverse_frequency_weights(torch.tensor([1, 3, 0]))
    assert weights.tolist() == pytest.approx([2.0, 2 / 3, 0.0])

    class Groups(torch.utils.data.Dataset):
        def __init__(self):
            self.groups = [0, 1, 1, 1, 2, 3, 3, 3]

    method = _make("upsampled_ft")
    report = method.prepare(PrepareContext(Groups(), None, torch.device("cpu"), 4))
    assert report["group_counts"] == [1, 3, 1, 3]
    data = _batch(4)
    data["group"] = torch.tensor([0, 1, 2, 3])
    out = method(data, _info())
    logits = method.head(method.model.encode_image(data["image"], normalize=True).float())
    per_sample = F.cross_entropy(logits, data["label"], reduction="none")
    expected = (torch.tensor([2.0, 2 / 3, 2.0, 2 / 3]) * per_sample).mean()
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    data["group"] = torch.tensor([0, 1, 2, 7])
    with pytest.raises(StarftError, match="did not have"):
        method(data, _info())
    data["group"] = torch.tensor([-1, -1, -1, -1])
    with pytest.raises(StarftError, match="no groups"):
        method(data, _info())


def test_group_source_discovery_needs_a_file():
    with pytest.raises(StarftError, match=r"method\.discovery"):
        _make("vl_gdro", {"groups": "discovery"})


# -- region metrics -----------------------------------------------------------------------------
def test_mask_boxes_are_tight():
    masks = torch.zeros(2, 8, 8)
    masks[0, 2:5, 1:7] = 1
    masks[1, 0, 0] = 0.9
    boxes = mask_boxes(masks)
    assert boxes[0].tolist() == [[1.0, 2.0, 7.0, 5.0]] and boxes[1].tolist() == [[0, 0, 1, 1]]
    faint = masks.clone()
    faint[1] = 0.2  # nothing above the 0.5 threshold
    with pytest.raises(StarftError, match="object mask 1 of the batch is empty"):
        mask_boxes(faint)


def test_region_metrics_on_hand_built_predictions():
    labels = torch.tensor([0, 0, 1, 1])
    groups = torch.tensor([0, 1, 2, 3])
    image = F.one_hot(torch.tensor([0, 0, 1, 0]), 2).float()
    region = F.one_hot(torch.tensor([0, 1, 1, 1]), 2).float()
    metrics, per_group = compute_metrics(image, labels, groups, region_logits=region)
    assert metrics["top1"] == 0.75 and metrics["worst_group_acc"] == 0.0
    assert metrics["region_top1"] == 0.75 and metrics["region_worst_group_acc"] == 0.0
    assert per_group["1"] == {"acc": 1.0, "n": 1, "region_acc": 0.0}
    plain, _ = compute_metrics(image, labels, groups)
    assert "region_top1" not in plain and "region_worst_group_acc" not in plain


def test_mitigation_metrics_on_a_tiny_set():
    model = create_model("starft-tiny-vit")

    class Tiny(torch.utils.data.Dataset):
        def __init__(self):
            self.classnames, self.templates = CLASSES, TEMPLATES
            self.group_names = [f"g{i}" for i in range(8)]

        def __len__(self):
            return 6

        def __getitem__(self, i):
            mask = torch.zeros(32, 32)
            mask[4 + i : 20 + i, 6:22] = 1
            image = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(i))
            return {"image": image, "label": i % 4, "group": i, "mask": mask}

    out = mitigation_metrics(model, Tiny(), batch_size=4)
    for key in ("image_overall", "image_worst_group", "region_overall", "region_worst_group"):
        assert 0.0 <= out[key] <= 1.0
    assert out["image_overall"] == out["top1"] and out["region_overall"] == out["region_top1"]


def test_discovery_groups_are_class_times_has_a_spurious_region(tmp_path):
    data = _batch()
    path = _frozen_discovery(tmp_path, _make("ravl"), data, [0])
    method = _make("vl_gdro", {"groups": "discovery", "discovery": path})
    assert method.dro.log_weights.numel() == 2 * len(CLASSES)
    flags = method.spurious.image_flags(data)
    assert flags[0].item()  # image 0's first cell is the kept medoid itself
    out = method(data, _info())
    assert torch.isfinite(out["loss"])
    from starft.methods.group_robust import batch_groups

    groups = batch_groups(data, "discovery", method.spurious, "vl_gdro")
    assert groups.tolist() == (2 * data["label"] + flags.long()).tolist()
