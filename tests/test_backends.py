"""Every backend behind the model protocol, parametrised over backends x tiny configs.

open_clip: the tiny ViT and ModifiedResNet configs; transformers: tiny random CLIP and SigLIP
saved with ``save_pretrained`` (tests/_tiny_models.py). Nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _tiny_models import fake_hub_cache, save_tiny_hf
from starft.config import OptimConfig
from starft.data import create_dataset
from starft.errors import StarftError
from starft.methods import METHODS, PrepareContext, StepInfo, Task, create_method
from starft.models import create_model, is_saved_model, save_model
from starft.train.optim import build_optimizer
from starft.train.sampling import seeded_generator

KINDS = ("oc-vit", "oc-rn", "hf-clip", "hf-siglip")
CLASSES = ["circle", "square", "triangle", "star"]
TEMPLATES = ["a photo of a {}.", "a sketch of a {}."]
CAPTIONS = ["a photo of a circle.", "a big red star on the grass next to a tiny moon.", "x"]


@pytest.fixture(scope="session")
def hf_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {kind: save_tiny_hf(kind, root / kind) for kind in ("clip", "siglip")}


@pytest.fixture
def load(hf_dirs):
    def make(kind: str):
        torch.manual_seed(0)
        if kind == "oc-vit":
            return create_model("starft-tiny-vit")
        if kind == "oc-rn":
            return create_model("starft-tiny-rn")
        return create_model(f"hf:{hf_dirs[kind[3:]]}")

    return make


def images(n=2, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# -- encoders: parity with the library ------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_encoders_match_the_underlying_library(kind, load):
    model = load(kind).eval()
    x, tokens = images(), model.tokenize(CAPTIONS)
    assert tokens.shape == (3, model.context_length)
    image, text = model.encode_image(x), model.encode_text(tokens)
    assert image.shape == (2, model.embed_dim) and text.shape == (3, model.embed_dim)
    if kind.startswith("oc"):
        lib_image, lib_text = model.model.encode_image(x), model.model.encode_text(tokens)
    else:  # transformers' own forward: normalised embeddings and logits
        out = model.model(input_ids=tokens, pixel_values=x)
        lib_image, lib_text = out.image_embeds, out.text_embeds
        image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
        want = model.scale() * image @ text.t() + (model.bias() if model.bias() is not None else 0)
        assert torch.allclose(out.logits_per_image, want, atol=1e-4)
    assert torch.allclose(image, lib_image, atol=1e-5)
    assert torch.allclose(text, lib_text, atol=1e-5)


def test_siglip_zero_shot_logits_carry_the_logit_bias(load):
    from starft.models import ZeroShotClassifier

    model = load("hf-siglip").eval()
    head = F.normalize(torch.randn(4, model.embed_dim), dim=-1)
    logits = ZeroShotClassifier(model, head)(images())
    features = model.encode_image(images(), normalize=True)
    assert torch.allclose(logits, 10.0 * features @ head.t() - 10.0, atol=1e-4)


# -- intermediates ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_intermediates_shapes_and_attention_parity(kind, load):
    model = load(kind).eval()
    x = images()
    inter = model.image_intermediates(x, stages=[0, -1], attention=True)
    last = model.num_stages() - 1
    assert list(inter.features) == [0, last]
    if kind == "oc-rn":
        assert inter.kind == "map" and all(f.ndim == 4 for f in inter.features.values())
        assert inter.features[last].shape[-2:] == inter.grid
    else:
        gh, gw = inter.grid
        assert inter.kind == "tokens" and (gh, gw) == (4, 4)
        assert all(f.shape[:2] == (2, gh * gw) for f in inter.features.values())
    assert len(inter.attentions) == (1 if kind == "oc-rn" else model.num_stages())
    tokens = inter.attentions[0].shape[-1]
    assert inter.attentions[0].shape[:2] == (2, inter.attentions[0].shape[1])
    assert tokens == inter.num_prefix_tokens + inter.grid[0] * inter.grid[1]
    assert torch.allclose(inter.attentions[-1].sum(-1), torch.ones(()), atol=1e-5)
    assert torch.allclose(inter.pooled, model.encode_image(x), atol=1e-5)
    # the attention probabilities are in the autograd graph
    model.zero_grad()
    (inter.attentions[0][:, :, 0] * torch.arange(tokens)).sum().backward()
    grads = [p.grad for p in model.image_tower().parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    plain = model.image_intermediates(x)
    assert plain.attentions is None and list(plain.features) == [last]
    assert torch.allclose(plain.pooled, inter.pooled, atol=1e-5)


def test_open_clip_attention_equals_multihead_attention_weights(load):
    model = load("oc-vit").eval()
    visual = model.model.visual
    x = visual._embeds(images())
    block = visual.transformer.resblocks[0]
    h = block.ln_1(x)
    _, want = block.attn(h, h, h, need_weights=True, average_attn_weights=False)
    got = model.image_intermediates(images(), attention=True).attentions[0]
    assert torch.allclose(got, want, atol=1e-6)


def test_stage_out_of_range_is_named(load):
    with pytest.raises(StarftError, match="stage 7 is out of range"):
        load("oc-vit").image_intermediates(images(), stages=[7])


# -- region features --------------------------------------------------------------------------
BOXES = [torch.tensor([[0.0, 0, 32, 32], [4, 4, 20, 28]]), torch.tensor([[8.0, 0, 32, 16]])]


@pytest.mark.parametrize("kind", KINDS)
def test_region_features_paths(kind, load):
    model = load(kind).eval()
    x = images()
    full = F.normalize(model.encode_image(x[:1]), dim=-1)[0]
    crop = model.region_features(x, BOXES, method="crop")
    fast = model.region_features(x, BOXES, method="fast")
    assert crop.shape == fast.shape == (3, model.embed_dim)
    assert torch.allclose(crop.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(crop[0], full, atol=1e-5)  # a full-image box is the image itself
    if kind in ("oc-rn", "hf-siglip"):
        # RoIAlign of the full layer3 map / MAP head over all tokens: exactly the image path.
        assert torch.allclose(fast[0], full, atol=1e-5)
    else:
        # ViT fast path: the mean patch token -> final norm -> projection.
        inter = model.image_intermediates(x[:1])
        tokens = inter.features[model.num_stages() - 1].mean(dim=1)
        if kind == "oc-vit":
            want = model.model.visual.ln_post(tokens) @ model.model.visual.proj
        else:
            vision = model.model.vision_model
            want = model.model.visual_projection(vision.post_layernorm(tokens))
        assert torch.allclose(fast[0], F.normalize(want, dim=-1)[0], atol=1e-5)
    assert torch.allclose(model.region_features(x, BOXES), fast)


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ([torch.tensor([[0.0, 0, 40, 10]])] * 2, "box 0 of image 0"),
        ([torch.tensor([[5.0, 5, 5, 10]])] * 2, "0 <= x1 < x2 <= 32"),
        ([torch.zeros(1, 3)] * 2, "must be [K, 4]"),
        ([torch.zeros(0, 4)], "boxes for 1 images but 2 images"),
    ],
)
def test_bad_boxes_are_named(boxes, message, load):
    with pytest.raises(StarftError) as err:
        load("oc-rn").region_features(images(), boxes)
    assert message in str(err.value)


def test_sandbox_resnet_roialign_is_close_to_crop_and_encode():
    model = create_model("sandbox-clip").eval()
    data = create_dataset("sandbox_val", n=8, transform=model.preprocess_val)
    x = torch.stack([data[i]["image"] for i in range(8)])
    boxes = [torch.tensor([[0.0, 0, 64, 64], [0, 0, 48, 48], [16, 16, 64, 64]])] * 8
    with torch.no_grad():
        cos = (model.region_features(x, boxes, "crop") * model.region_features(x, boxes)).sum(-1)
    # measured (bench/region_fidelity.py): ~0.75-0.83 mean on partial boxes, exactly 1 on full ones
    assert cos.view(8, 3)[:, 1:].mean() > 0.6 and cos.view(8, 3)[:, 0].min() > 0.999


# -- save / load ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_is_bit_identical(kind, load, tmp_path):
    model = load(kind)
    with torch.no_grad():  # not the initial weights: a trained model
        for p in model.parameters():
            p.add_(0.01)
    out = save_model(model, tmp_path / "saved")
    assert is_saved_model(out)
    again = create_model(str(out))
    assert type(again) is type(model)
    want, got = model.state_dict(), again.state_dict()
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)
    if kind.startswith("hf"):  # transformers itself loads the export back
        import transformers

        cls = getattr(transformers, type(model.model).__name__)
        native = cls.from_pretrained(str(out), local_files_only=True).state_dict()
        assert all(torch.equal(native[k], v) for k, v in model.library_state_dict().items())
        tok = transformers.AutoTokenizer.from_pretrained(str(out), local_files_only=True)
        assert tok("a photo")["input_ids"] == model.hf_tokenizer("a photo")["input_ids"]


def test_hf_hub_names_resolve_from_the_local_cache_only(load, tmp_path, monkeypatch):
    source = load("oc-vit")
    fake_hub_cache(tmp_path / "hub", "someorg/tiny-clip", source)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model = create_model("hf-hub:someorg/tiny-clip")
    want, got = source.state_dict(), model.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)
    with pytest.raises(StarftError) as err:
        create_model("hf-hub:someorg/absent")
    assert str(tmp_path / "hub") in str(err.value) and "not in the local" in str(err.value)
    with pytest.raises(StarftError) as err:
        create_model("hf:someorg/absent-hf")
    assert str(tmp_path / "hub") in str(err.value)


def test_hf_model_ids_resolve_from_the_local_cache(load, tmp_path, monkeypatch):
    source = load("hf-siglip")
    fake_hub_cache(tmp_path / "hub", "someorg/tiny-siglip", source)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model = create_model("hf:someorg/tiny-siglip")
    want, got = source.state_dict(), model.state_dict()
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)


def test_hf_folder_of_an_unsupported_type_is_named(tmp_path):
    with pytest.raises(StarftError, match="does not exist"):
        create_model(f"hf:{tmp_path / 'nowhere'}")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(StarftError, match="'bert' model; the hf backend takes clip, siglip"):
        create_model(f"hf:{tmp_path / 'm'}")


# -- every method trains on every backend -----------------------------------------------------
class _Tensors(torch.utils.data.Dataset):
    def __init__(self, n=16, seed=0):
        self.x = images(n, seed)
        self.y = torch.arange(n) % len(CLASSES)
        # class x feature group ids, as the group-robust methods read them
        self.groups = (2 * self.y + (torch.arange(n) // len(CLASSES)) % 2).tolist()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"image": self.x[i], "label": int(self.y[i]), "group": self.groups[i], "index": i}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_takes_a_step_on_every_backend(name, kind, load):
    method = create_method(name, load(kind), Task(CLASSES, TEMPLATES))
    method.prepare(PrepareContext(_Tensors(), _Tensors(seed=1), torch.device("cpu"), 8))
    params = dict(method.trainable_named_parameters())
    before = {k: v.detach().clone() for k, v in params.items()}
    data = _Tensors(8, seed=2)
    mask = torch.zeros(data.x.shape[0], *data.x.shape[-2:])
    mask[:, : data.x.shape[-2] // 2] = 1  # read by the relevance-guided methods
    batch = {"image": data.x, "label": data.y, "mask": mask, "group": torch.tensor(data.groups)}
    if method.trains_by_gradient:
        method.train()
        optimizer = build_optimizer(method.trainable_named_parameters(), OptimConfig(lr=1e-3))
        info = StepInfo(0, 0, 4, 8, seeded_generator(0, 0))
        loss = method(batch, info)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        method.after_optimizer_step(info)
        assert any(not torch.equal(before[k], p) for k, p in params.items())
    logits = method.classifier()(data.x)
    assert logits.shape == (8, len(CLASSES)) and torch.isfinite(logits).all()


# -- the package boundary and the listing -----------------------------------------------------
def test_only_the_backend_package_imports_open_clip_or_transformers():
    import ast
    from pathlib import Path

    import starft

    root = Path(starft.__file__).parent
    # The language-model backend of `starft pools generate` loads causal LMs (not CLIP models)
    # through transformers; it is the generation package's own backend module.
    # Likewise the grounding pipeline's detector and segmenter (`starft masks build`): OWLv2 /
    # GroundingDINO and SAM, loaded only by the masks package's own backend module.
    other_backends = {root / "generation" / "hf_backend.py", root / "masks" / "grounders.py"}
    offenders = []
    for path in root.rglob("*.py"):
        if root / "models" / "backends" in path.parents or path in other_backends:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("open_clip", "transformers") for n in names):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


def test_ls_models_lists_the_backends_and_their_prefixes(capsys):
    from starft.cli.main import main

    assert main(["ls", "models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    backends = {line.split()[1]: line for line in lines if line.startswith("backend ")}
    assert set(backends) == {"open_clip", "hf"}
    assert "hf:PATH_OR_ID" in backends["hf"]
    assert "hf-hub:ORG/NAME" in backends["open_clip"] and "local-dir:" in backends["open_clip"]
