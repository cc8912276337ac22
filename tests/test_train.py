"""The training loop end to end on synthetic data: outputs, resume, accumulation, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from _run_configs import tiny_run_config
from starft.errors import StarftError
from starft.eval import load_result
from starft.train import Trainer, fit
from starft.train.checkpoint import load_checkpoint
from starft.train.optim import lr_at


def config(tmp_path, *overrides, name="run"):
    return tiny_run_config(tmp_path, "starft", *overrides, name=name)


def weights(run_dir):
    return load_file(str(run_dir / "final" / "open_clip_model.safetensors"))


def test_fit_writes_a_complete_run_folder(tmp_path):
    cfg = config(
        tmp_path, "data.val={num_classes: 4, num_samples: 32, seed: 1}", "save_predictions=true"
    )
    result = fit(cfg)
    run = tmp_path / "run"
    assert result.steps == 8 and len(result.history) == 2
    for path in ("config.yaml", "metrics.jsonl", "checkpoints/latest.pt", "best", "final"):
        assert (run / path).exists(), path
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(1, 9))
    assert {"loss", "contrastive", "lr", "logit_scale"} <= set(train_rows[0])
    assert "star" in train_rows[0]  # λ > 0 in the first of two epochs
    (result_file,) = (run / "results").glob("*.json")
    saved = load_result(result_file)
    assert saved["method"] == "starft" and saved["metrics"]["top1"] == result.best_metric
    assert saved["config"]["optim"]["lr"] == 1e-3
    assert (run / "results" / "predictions_synthetic-val.csv").is_file()


def test_learning_rate_schedule():
    assert lr_at(0, 1.0, 4, 20, "cosine") == pytest.approx(0.25)
    assert lr_at(3, 1.0, 4, 20, "cosine") == pytest.approx(1.0)
    assert lr_at(4, 1.0, 4, 20, "cosine") == pytest.approx(1.0)
    assert lr_at(12, 1.0, 4, 20, "cosine") == pytest.approx(0.5)
    assert lr_at(19, 1.0, 4, 20, "constant") == 1.0
    # step: 0.85^(epoch // 2) with 5 steps per epoch, no warmup
    assert lr_at(9, 1.0, 0, 50, "step", steps_per_epoch=5) == 1.0  # epoch 1
    assert lr_at(10, 1.0, 0, 50, "step", steps_per_epoch=5) == pytest.approx(0.85)  # epoch 2
    assert lr_at(49, 1.0, 0, 50, "step", steps_per_epoch=5) == pytest.approx(0.85**4)


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", [3, 6])  # end of epoch 0 is step 4; 6 is mid-epoch 1
def test_resume_reproduces_an_uninterrupted_run(tmp_path, monkeypatch, crash_at):
    extra = ("checkpoint_every_steps=1", "data.augment=true")
    uninterrupted = fit(config(tmp_path, *extra, name="full"))

    original = Trainer._optimizer_step

    def crashing_step(self, *args):
        original(self, *args)
        if self.step == crash_at:
            raise Crash

    monkeypatch.setattr(Trainer, "_optimizer_step", crashing_step)
    with pytest.raises(Crash):
        fit(config(tmp_path, *extra, name="resumed"))
    monkeypatch.setattr(Trainer, "_optimizer_step", original)
    # The crash came after the update of step `crash_at` but before its checkpoint was written.
    assert load_checkpoint(tmp_path / "resumed/checkpoints/latest.pt")["step"] == crash_at - 1
    resumed = fit(config(tmp_path, *extra, name="resumed"), resume="auto")

    assert resumed.steps == uninterrupted.steps
    a, b = weights(tmp_path / "full"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:  # bit-identical on CPU: data order, augmentation and draws are all seeded
        assert torch.equal(a[key], b[key]), key


def test_resume_refuses_a_different_config(tmp_path):
    fit(config(tmp_path, "optim.epochs=1"))
    with pytest.raises(StarftError, match="its 'optim' config differs"):
        fit(config(tmp_path, "optim.epochs=1", "optim.lr=5e-4"), resume="auto")
    with pytest.raises(StarftError, match="does not exist"):
        fit(config(tmp_path, "optim.epochs=1"), resume=str(tmp_path / "nope.pt"))


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    result = fit(config(tmp_path, "optim.accum_steps=2", "data.batch_size=8"))
    assert result.steps == 8  # 64 samples / (8 x 2) = 4 steps per epoch, 2 epochs


def test_too_large_batch_is_a_clear_error(tmp_path):
    with pytest.raises(StarftError, match=r"larger than the training set \(64 samples\)"):
        fit(config(tmp_path, "data.batch_size=128"))


def write_csv_dataset(root, corrupt_row=None):
    root.mkdir(parents=True, exist_ok=True)
    rows = ["filepath,label"]
    for i in range(16):
        path = root / f"img{i}.png"
        if i == corrupt_row:
            path.write_bytes(b"not a png")
        else:
            Image.new("RGB", (32, 32), ((i % 2) * 255, 0, 0)).save(path)
        rows.append(f"{path.name},{i % 2}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    return root / "train.csv"


def test_corrupt_image_fails_naming_the_file_or_is_skipped(tmp_path):
    csv = write_csv_dataset(tmp_path / "data", corrupt_row=5)
    common = (
        "data.dataset=csv",
        f"data.train={{path: {csv}, classnames: [red, black]}}",
        "data.batch_size=8",
        "optim.epochs=1",
    )
    with pytest.raises(StarftError, match=r"img5\.png"):
        fit(config(tmp_path, *common, name="strict"))
    fit(config(tmp_path, *common, "data.on_bad_image=skip", name="lenient"))
    rows = [json.loads(r) for r in (tmp_path / "lenient/metrics.jsonl").read_text().splitlines()]
    assert sum(r["skipped_images"] for r in rows if r["split"] == "train") == 1


def test_group_selection_needs_a_grouped_validation_set(tmp_path):
    with pytest.raises(StarftError, match="select_by=worst_group_acc needs a validation set"):
        fit(config(tmp_path, "select_by=worst_group_acc"))
