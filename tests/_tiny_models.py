"""Tiny random models of every backend, written to disk the way a user's checkpoints are.

* ``save_tiny_hf(kind, folder)``: a random ``transformers`` CLIP or SigLIP saved with
  ``save_pretrained`` together with a tokenizer built offline (CLIP: a byte-level BPE vocabulary
  with no merges; SigLIP: a word-level ``tokenizers`` vocabulary with an end-of-text token and no
  start token, like SigLIP's) and an image processor.
* ``fake_hub_cache(cache, repo_id, model)``: a starft open_clip model placed in a Hugging Face cache
  laid out as ``huggingface_hub`` writes it (``models--ORG--NAME/{refs,snapshots}``).
* ``save_tiny_owlv2(folder)`` / ``save_tiny_sam(folder)``: a random open-vocabulary detector and a
  promptable segmenter for ``starft masks build``.
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = [
    "a",
    "an",
    "the",
    "of",
    "photo",
    "picture",
    "image",
    "small",
    "large",
    "big",
    "tiny",
    "in",
    "on",
    "with",
    "by",
    "at",
    "and",
    "next",
    "to",
    "circle",
    "square",
    "triangle",
    "star",
    "arrow",
    "cross",
    "heart",
    "ring",
    "moon",
    "diamond",
    "hexagon",
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "orange",
    "white",
    "black",
    "water",
    "grass",
    "sand",
    "snow",
    "sky",
    "forest",
    "brick",
    "night",
    "sketch",
    "cartoon",
    "painting",
    "flowers",
    "surrounded",
    "class",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
]


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    (folder / "vocab.json").unlink()
    (folder / "merges.txt").unlink()
    return tokenizer


def _siglip_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def save_tiny_hf(kind: str, folder: str | Path, seed: int = 0) -> Path:
    """A random tiny ``clip`` or ``siglip`` model + tokenizer + image processor in ``folder``."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vision = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    torch.manual_seed(seed)
    if kind == "clip":
        tokenizer = _clip_tokenizer(folder)
        eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id
        text = dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=64,
            eos_token_id=eos,
            bos_token_id=bos,
            pad_token_id=eos,
        )
        config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)
        model = CLIPModel(config)
        processor = CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )
    elif kind == "siglip":
        tokenizer = _siglip_tokenizer()
        text = dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=24,
            pad_token_id=0,
            bos_token_id=None,
            eos_token_id=1,
        )
        config = SiglipConfig(text_config=text, vision_config=vision)
        model = SiglipModel(config)
        with torch.no_grad():  # SigLIP's published initialisation: s = 10, b = -10
            model.logit_scale.fill_(2.302585)
            model.logit_bias.fill_(-10.0)
        processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    else:
        raise ValueError(kind)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


def fake_hub_cache(cache: str | Path, repo_id: str, model) -> Path:
    """Put ``model`` (any starft model) into ``cache`` as the hub would; returns the snapshot."""
    from starft.models import save_model

    cache = Path(cache)
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    save_model(model, snapshot)
    return snapshot


def save_tiny_owlv2(folder: str | Path, seed: int = 0) -> Path:
    """A random tiny OWLv2 detector + processor (32 px, 4x4 patches) in ``folder``.

    The box head's last layer is zeroed so every box is its patch's prior box (inside the
    image); scores stay random. Tests the path, not detection quality.
    """
    import torch
    from transformers import (
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _clip_tokenizer(folder)
    tokenizer.pad_token = "!"
    tokenizer.model_max_length = 16
    tiny = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = Owlv2Config(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=16, **tiny),
        vision_config=dict(image_size=32, patch_size=8, **tiny),
        projection_dim=16,
    )
    model = Owlv2ForObjectDetection(config)
    with torch.no_grad():
        model.box_head.dense2.weight.zero_()
        model.box_head.dense2.bias.zero_()
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


def save_tiny_sam(folder: str | Path, seed: int = 0) -> Path:
    """A random tiny SAM (64 px input, 16 px low-resolution masks) + processor in ``folder``."""
    import torch
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    folder = Path(folder)
    torch.manual_seed(seed)
    config = SamConfig(
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=64,
            patch_size=16,
            output_channels=8,
            global_attn_indexes=[0],
            mlp_dim=32,
            window_size=2,
            num_pos_feats=4,
        ),
        prompt_encoder_config=dict(
            hidden_size=8, image_size=64, patch_size=16, mask_input_channels=4
        ),
        mask_decoder_config=dict(
            hidden_size=8,
            mlp_dim=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            iou_head_hidden_dim=8,
        ),
    )
    processor = SamProcessor(
        image_processor=SamImageProcessor(
            size={"longest_edge": 64},
            pad_size={"height": 64, "width": 64},
            mask_size={"longest_edge": 16},
            mask_pad_size={"height": 16, "width": 16},
        )
    )
    SamModel(config).save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


def save_tiny_grounding_dino(folder: str | Path, seed: int = 0) -> Path:
    """A random tiny GroundingDINO (Swin 2 stages, 1 encoder / 2 decoder layers) + processor.

    Its tokenizer is a BERT WordPiece vocabulary of a few words (the test concepts).
    """
    import torch
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "bird", "beak", "long", "neck"]
    words += ["webbed", "feet"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    (folder / "vocab.txt").unlink()
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            image_size=32,
            patch_size=4,
            embed_dim=8,
            depths=[1, 1],
            num_heads=[1, 1],
            window_size=2,
            out_features=["stage1", "stage2"],
        ),
        text_config=BertConfig(
            vocab_size=len(words),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        ),
        d_model=32,  # GroupNorm(32, d_model)
        encoder_layers=1,
        decoder_layers=2,  # the box heads of decoder layers > 0 are tied to layer 0's
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=5,
        num_feature_levels=2,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=16,
        use_timm_backbone=False,
        backbone=None,
        use_pretrained_backbone=False,
    )
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 32, "longest_edge": 48}),
        tokenizer=tokenizer,
    )
    GroundingDinoForObjectDetection(config).save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder
