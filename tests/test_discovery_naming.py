"""Naming discovered clusters: vocabularies, ranking descriptors, writing them as a pool."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from starft.data.pools import load_pool
from starft.discovery.naming import (
    DescriptorScore,
    descriptor_embeddings,
    name_clusters,
    pool_from_names,
    write_pool_file,
)
from starft.discovery.vocabulary import (
    SANDBOX_WORLD,
    load_vocabulary,
    read_word_list,
    sandbox_world_descriptors,
)
from starft.errors import StarftError
from starft.generation.pool_file import validate_pool_file
from starft.models import create_model
from starft.sandbox.world import ATTRIBUTES, vocabulary


def test_sandbox_world_vocabulary_and_class_exclusion():
    entries = sandbox_world_descriptors()
    assert len(entries) == sum(len(vocabulary(a)) for a in ATTRIBUTES)
    assert "{} in a water scene." in entries and "{} in sketch style." in entries
    vocab = load_vocabulary([SANDBOX_WORLD], exclude=vocabulary("shape"))
    # every shape phrase names a class, so all of them go, and nothing else does
    assert len(vocab) == len(entries) - len(vocabulary("shape"))
    assert vocab.dropped["{} next to the circle."] == "names the class 'circle'"
    assert not any("circle" in d for d in vocab.descriptors)
    assert set(vocab.sources) == {SANDBOX_WORLD}


def test_word_lists_pools_and_errors(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# markers\nplus sign\n\n{} Near A Dot!\nplus sign\n", encoding="utf-8")
    assert read_word_list(words) == ["{} with plus sign.", "{} Near A Dot!", "{} with plus sign."]
    vocab = load_vocabulary([str(words), "sandbox_scene"], word_template="{} beside a {word}.")
    assert vocab.descriptors[:2] == ["{} beside a plus sign.", "{} near a dot."]  # normalised
    assert vocab.descriptors[2:] == load_pool("sandbox_scene")
    assert vocab.sources[0] == str(words) and vocab.sources[-1] == "sandbox_scene"
    with pytest.raises(StarftError, match="unknown vocabulary 'nope'"):
        load_vocabulary(["nope"])
    with pytest.raises(StarftError, match=r"must contain '\{word\}' exactly once"):
        load_vocabulary([str(words)], word_template="{} with a thing.")
    with pytest.raises(StarftError, match="no descriptor left"):
        load_vocabulary([str(words)], exclude=["plus sign", "dot"])
    bad = tmp_path / "bad.txt"
    bad.write_text("{} and {}\n", encoding="utf-8")
    with pytest.raises(StarftError, match="line 1"):
        load_vocabulary([str(bad)])


def test_naming_ranks_a_planted_descriptor_first():
    torch.manual_seed(0)
    descriptors = [f"{{}} with thing {i}." for i in range(30)]
    text = F.normalize(torch.randn(30, 16), dim=-1)
    planted = 17
    regions = F.normalize(text[planted] + 0.3 * torch.randn(8, 16), dim=-1)
    others = F.normalize(torch.randn(8, 16), dim=-1)
    embeddings = torch.cat([others, regions])
    names = name_clusters(embeddings, [list(range(8, 16)), [0, 1]], text, descriptors, top=3)
    assert names[0][0].descriptor == descriptors[planted]
    assert len(names[0]) == 3 and names[0][0].score > names[0][1].score
    # ties keep vocabulary order
    twin = name_clusters(embeddings, [[8]], torch.stack([text[0], text[0]]), ["{} a.", "{} b."])
    assert [n.descriptor for n in twin[0]] == ["{} a.", "{} b."]
    with pytest.raises(StarftError, match="3 descriptors"):
        name_clusters(embeddings, [[0]], text, descriptors[:3])


def test_contrast_naming_names_what_sets_a_cluster_apart():
    torch.manual_seed(1)
    text = F.normalize(torch.randn(10, 32), dim=-1)
    descriptors = [f"{{}} with thing {i}." for i in range(10)]
    shared = 2.0 * text[0]  # every region has it (say, blur)
    cluster = F.normalize(shared + text[5] + 0.1 * torch.randn(6, 32), dim=-1)
    rest = F.normalize(shared + 0.5 * torch.randn(20, 32), dim=-1)
    embeddings = torch.cat([cluster, rest])
    members = [list(range(6))]
    plain = name_clusters(embeddings, members, text, descriptors, top=2)
    contrast = name_clusters(embeddings, members, text, descriptors, top=2, score="contrast")
    assert plain[0][0].descriptor == descriptors[0]
    assert contrast[0][0].descriptor == descriptors[5]
    with pytest.raises(StarftError, match="naming score"):
        name_clusters(embeddings, members, text, descriptors, score="dot")


def test_naming_with_the_sandbox_text_tower():
    """Regions that look like a caption's text embedding are named by that caption's descriptor."""
    model = create_model("sandbox-clip")
    vocab = load_vocabulary([SANDBOX_WORLD])
    text = descriptor_embeddings(model, vocab.descriptors)
    assert text.shape == (len(vocab), model.embed_dim)
    planted = vocab.descriptors.index("{} in a snow scene.")
    with torch.no_grad():
        caption = model.encode_text(model.tokenize(["a photo in a snow scene."]), normalize=True)
    assert torch.allclose(caption[0], text[planted], atol=1e-5)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(6, model.embed_dim, generator=generator) / model.embed_dim**0.5
    regions = F.normalize(text[planted] + 0.5 * noise, dim=-1)
    names = name_clusters(regions, [list(range(6))], text, vocab.descriptors)
    assert names[0][0].descriptor == "{} in a snow scene."


def test_pool_export_loads_and_validates(tmp_path):
    names = [
        [DescriptorScore("{} in a water scene.", 0.5), DescriptorScore("{}, blurry.", 0.4)],
        [DescriptorScore("{}, blurry.", 0.6)],  # named the first cluster too: kept there only
        [DescriptorScore("{} in sketch style.", 0.3)],
    ]
    pools = pool_from_names(names, ["cluster_1", "cluster_2", "cluster_3"])
    assert pools == {
        "cluster_1": ["{} in a water scene.", "{}, blurry."],
        "cluster_3": ["{} in sketch style."],
    }
    path = write_pool_file(tmp_path / "pool.json", pools, {"generator": "test"})
    assert load_pool(path) == ["{} in a water scene.", "{}, blurry.", "{} in sketch style."]
    assert validate_pool_file(path, classnames=["circle"]) == []
    assert json.loads(path.read_text())["_provenance"]["final"] == {"cluster_1": 2, "cluster_3": 1}
    with pytest.raises(StarftError, match="no descriptors"):
        write_pool_file(tmp_path / "empty.json", {}, {})
    with pytest.raises(StarftError, match="exactly one"):
        write_pool_file(tmp_path / "bad.json", {"c": ["{} {} twice."]}, {})
    assert not (tmp_path / "bad.json").exists()
