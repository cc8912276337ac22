"""`starft pools|concepts ...` end to end: a local server, the committed replay cache, training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _fake_lm import FakeServer
from starft.cli.main import main
from starft.config import load_train_config
from starft.data import load_pool
from starft.methods.starft import StarFT, StarFTConfig
from starft.train import fit

FIXTURES = Path(__file__).parent / "fixtures" / "pools"
CACHE = FIXTURES / "sandbox_pool.cache.jsonl"
CLASSES = FIXTURES / "shapes.txt"
# The arguments the committed cache was recorded with (answers of _fake_lm.fake_answer). After a
# change of the packaged prompts, re-record it: run the first test below with its cache path set
# to CACHE (it checks that the committed file is exactly what the scripted server answers).
POOL_ARGS = ["--model", "tiny-chat", "--per-concept", "6", "--per-call", "5"]


def _records(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "date"}
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_committed_cache_is_what_the_local_server_answers(tmp_path, capsys):
    cache = tmp_path / "pool.cache.jsonl"
    out = ["--classes", str(CLASSES), "--out", str(tmp_path / "pool.json")]
    with FakeServer() as server:
        args = ["pools", "generate", "--backend", "openai", "--base-url", server.base_url]
        assert main([*args, *POOL_ARGS, *out]) == 0
    assert "8 new, 0 cached" in capsys.readouterr().out
    assert cache.is_file()  # default cache: beside --out
    assert _records(cache) == _records(CACHE)
    info = json.loads((tmp_path / "pool.json").read_text())["_provenance"]
    assert info["endpoint"] == f"{server.base_url}/chat/completions"


def test_replayed_pool_validates_and_trains_starft_on_the_sandbox(tmp_path, capsys):
    pool = tmp_path / "pool.json"
    replay = ["pools", "generate", "--backend", "replay", "--cache", str(CACHE), *POOL_ARGS]
    target = ["--target-model", "sandbox-clip", "--classes", str(CLASSES)]
    assert main([*replay, *target, "--out", str(pool)]) == 0
    assert "0 new, 8 cached" in capsys.readouterr().out
    data = json.loads(pool.read_text())
    info = data["_provenance"]
    assert info["backend"] == "replay" and info["recorded_backend"] == "openai"
    assert info["concepts"]["names"] == ["background", "texture", "resolution"]
    assert info["target"]["model"] == "sandbox-clip" and info["target"]["context_length"] == 32
    assert [s["filter"] for s in info["counts"]][-1] == "per_concept"
    assert data["background"][0] == "{} on the beach."
    assert not any("circle" in d for d in load_pool(pool))

    assert main(["pools", "validate", str(pool), *target]) == 0
    assert "ok:" in capsys.readouterr().out
    assert main(["pools", "show", str(pool), "--dropped"]) == 0
    shown = capsys.readouterr().out
    assert "dropped [background] '{} near a circle.': forbidden" in shown

    overrides = [
        "model.name=sandbox-clip",
        "method.name=starft",
        f"method.pool={pool}",
        "method.decay=none",
        "data.dataset=sandbox_train",
        "data.train={n: 32}",
        "data.batch_size=16",
        "optim.epochs=1",
        "optim.warmup_steps=1",
        "optim.lr=1e-5",
        "log.progress=false",
        "log.tensorboard=false",
        "log.every_steps=1",
        f"out_dir={tmp_path / 'run'}",
    ]
    # The descriptors StarFT draws from are exactly the generated pool's.
    method_config = StarFTConfig(pool=str(pool))
    assert StarFT._descriptors(None, method_config) == load_pool(pool)  # type: ignore[arg-type]
    result = fit(load_train_config(None, overrides))
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert result.steps == 2 and all(r["star"] > 0 for r in train_rows)


def test_replay_miss_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "pool.json"
    args = [
        "pools",
        "generate",
        "--backend",
        "replay",
        "--cache",
        str(CACHE),
        "--model",
        "tiny-chat",
    ]
    assert main([*args, "--per-call", "7", "--out", str(out)]) == 2
    note, error = capsys.readouterr().err.strip().split("\n")  # the no-target note, the error
    assert note.startswith("starft: note: no --target-model")
    assert error.startswith("starft: error: replay: no cached answer")
    assert not out.exists()


def test_validate_reports_problems(tmp_path, capsys):
    path = tmp_path / "pool.json"
    path.write_text(
        json.dumps({"bg": ["{} On the beach", "{} near a circle.", "{} on the beach."]})
    )
    assert main(["pools", "validate", str(path), "--classes", str(CLASSES)]) == 2
    captured = capsys.readouterr()
    assert "is not normalised" in captured.out and "names 'circle'" in captured.out
    assert "3 problem(s)" in captured.err
    path.write_text(json.dumps({"bg": ["no slot"]}))
    assert main(["pools", "validate", str(path)]) == 2
    assert "exactly one '{}'" in capsys.readouterr().err


def test_concepts_generate_and_show(tmp_path, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text("circle\nsquare\n")
    out = tmp_path / "bank.json"
    with FakeServer() as server:
        args = ["concepts", "generate", "--backend", "openai", "--base-url", server.base_url]
        assert main([*args, "--model", "m", "--classes", str(classes), "--out", str(out)]) == 0
    assert (tmp_path / "bank.cache.jsonl").is_file()
    bank = json.loads(out.read_text())
    assert bank["circle"][0] == {"concept": "round outline", "weight": 5.0}
    assert main(["concepts", "show", str(out)]) == 0
    assert "circle: round outline (5), smooth edge (3), no corners (4)" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["pools", "concepts"])
def test_help_lists_the_backends(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "generate", "--help"])
    assert "{openai,replay,transformers}" in capsys.readouterr().out
