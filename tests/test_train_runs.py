"""Training runs and their folders: warm-up, non-finite steps, reuse/resume/overwrite, modes, logs.

Every case of docs/reliability.md "Training runs and run folders" that a single process can show.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from safetensors.torch import load_file

from _run_configs import tiny_run_config
from starft.cli.main import main
from starft.errors import StarftError
from starft.train import Trainer, fit
from starft.train.checkpoint import load_checkpoint
from starft.train.nonfinite import DeferredCheck
from starft.train.optim import effective_warmup
from starft.utils import io as starft_io


def config(tmp_path, *overrides, name="run"):
    return tiny_run_config(tmp_path, "flyp", *overrides, name=name)


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.split("\n") if "starft: error:" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("starft: error: "), repr(err)  # on its own line
    return lines[0]


# -- warm-up ------------------------------------------------------------------------------------
def test_warmup_is_capped_to_a_fifth_of_the_run():
    assert effective_warmup(500, 25_000) == 500  # the paper's ImageNet run: untouched
    assert effective_warmup(500, 4) == 1
    assert effective_warmup(5, 40) == 5  # the demo recipe: untouched
    assert effective_warmup(0, 4) == 0
    with pytest.raises(StarftError, match="warmup_steps must be >= 0"):
        effective_warmup(-1, 4)


def test_a_short_run_reaches_its_learning_rate_and_says_so(tmp_path, capsys):
    fit(config(tmp_path, "optim.warmup_steps=500", "optim.epochs=1", "optim.schedule=constant"))
    lrs = [r["lr"] for r in rows(tmp_path / "run") if r["split"] == "train"]
    assert lrs == [1e-3] * 4  # 4 steps: warm-up capped at 1 step, then the set rate
    err = capsys.readouterr().err
    assert "optim.warmup_steps=500 is more than 20% of this run's 4 steps" in err


# -- non-finite losses and gradients -----------------------------------------------------------
def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = config(
        tmp_path,
        "optim.lr=1e10",
        "checkpoint_every_steps=1",
        "data.val={num_classes: 4, num_samples: 16, seed: 1}",
    )
    with pytest.raises(StarftError, match=r"non-finite (loss|gradient) at step (\d+) of 8") as info:
        fit(cfg)
    step = int(info.value.args[0].split(" at step ")[1].split()[0])
    run = tmp_path / "run"
    assert not (run / "final").exists() and not (run / "best").exists()
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert state["step"] == step - 1 and f"(step {step - 1})" in str(info.value)
    assert all(torch.isfinite(v).all() for v in state["method"]["model"].values())


def test_nonfinite_steps_can_be_skipped_and_are_counted(tmp_path, monkeypatch):
    original = Trainer._forward_backward

    def poisoned(self, batch, info, last_micro):  # NaN loss (and gradients) at steps 2 and 5
        out = original(self, batch, info, last_micro)
        if info.step in (2, 5):
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(Trainer, "_forward_backward", poisoned)
    with pytest.raises(StarftError, match="non-finite loss at step 3 of 8"):
        fit(config(tmp_path, name="stop"))
    result = fit(config(tmp_path, "optim.on_nonfinite=skip", name="skip"))
    assert result.steps == 8 and result.skipped_steps == 2
    train = [r for r in rows(tmp_path / "skip") if r["split"] == "train"]
    assert [r["nonfinite_skipped"] for r in train] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert "loss" not in train[2]  # the skipped step's NaN never enters the logged means
    weights = load_file(tmp_path / "skip" / "final" / "open_clip_model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_deferred_check_keeps_the_first_bad_step_and_prefers_the_loss_at_a_tie():
    check = DeferredCheck(torch.device("cpu"))
    assert check.take() is None  # nothing recorded: nothing read
    false, true = torch.tensor(False), torch.tensor(True)
    check.record(false, torch.tensor(1.0), 0)
    check.record(false, torch.tensor(float("inf")), 1)  # the first bad step: a gradient
    check.record(true, torch.tensor(float("nan")), 2)
    assert check.take() == (1, "gradient")
    assert check.take() is None  # reset by the read
    check.record(true, torch.tensor(float("nan")), 7)
    check.record(false, None, 8)
    assert check.take() == (7, "loss")


def test_stop_mode_reads_the_device_on_log_steps_only(tmp_path, monkeypatch):
    reads = []
    original = DeferredCheck.take

    def spy(self, world_size=1):
        if self.pending:
            reads.append(self.pending)  # steps covered by this one read
        return original(self, world_size)

    monkeypatch.setattr(DeferredCheck, "take", spy)
    fit(config(tmp_path, "log.every_steps=4"))
    assert reads == [4, 4]  # 8 steps, 2 log rows: one read each, none per step


def test_a_stopped_run_can_resume_with_skip(tmp_path, monkeypatch):
    original = Trainer._forward_backward

    def poisoned(self, batch, info, last_micro):
        out = original(self, batch, info, last_micro)
        if info.step == 5:
            out["loss"] = out["loss"] * float("inf")
        return out

    monkeypatch.setattr(Trainer, "_forward_backward", poisoned)
    with pytest.raises(StarftError, match="at step 6 of 8"):
        fit(config(tmp_path, "checkpoint_every_steps=1"))
    result = fit(config(tmp_path, "checkpoint_every_steps=1", "optim.on_nonfinite=skip"), "latest")
    assert result.skipped_steps == 1 and result.steps == 8


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.on_nonfinite=ignore", r"optim\.on_nonfinite must be one of"),
        ("optim.warmup_steps=-3", r"optim\.warmup_steps must be >= 0, got -3"),
        ("checkpoint_every_steps=-1", r"checkpoint_every_steps must be >= 0, got -1"),
        ("log.every_steps=0", r"log\.every_steps must be >= 1, got 0"),
    ],
)
def test_bad_run_settings_are_refused_before_anything_is_written(tmp_path, override, message):
    with pytest.raises(StarftError, match=message):
        fit(config(tmp_path, override))
    assert not (tmp_path / "run").exists()


def test_a_nonfinite_validation_score_is_never_selected(tmp_path, monkeypatch, capsys):
    original = Trainer._evaluate

    def nan_first_epoch(self):
        metrics, per_group, predictions = original(self)
        if self.epoch == 1:  # the end of epoch 0
            metrics = {**metrics, "top1": float("nan")}
        return metrics, per_group, predictions

    monkeypatch.setattr(Trainer, "_evaluate", nan_first_epoch)
    result = fit(config(tmp_path, "data.val={num_classes: 4, num_samples: 16, seed: 1}"))
    assert result.best_metric == result.history[1]["top1"]  # epoch 1's, a number
    assert "validation top1 is nan after epoch 0: not considered for best/" in (
        capsys.readouterr().err
    )


def test_select_by_a_lower_is_better_metric_keeps_the_lowest(tmp_path, monkeypatch):
    """select_by=nll (the validation loss) keeps the epoch with the lowest value."""
    original = Trainer._evaluate

    def nll_rises(self):
        metrics, per_group, predictions = original(self)
        return {**metrics, "nll": [0.5, 0.9][self.epoch - 1]}, per_group, predictions

    monkeypatch.setattr(Trainer, "_evaluate", nll_rises)
    result = fit(config(tmp_path, "select_by=nll", "data.val={num_classes: 4, num_samples: 16}"))
    assert [h["nll"] for h in result.history] == [0.5, 0.9]
    assert result.best_metric == 0.5


@pytest.mark.parametrize("name", ["accuracy", "miou"])
def test_select_by_needs_a_metric_of_the_predictions(tmp_path, name):
    with pytest.raises(
        StarftError, match=f"select_by must be a metric of the predictions .*'{name}'"
    ):
        fit(config(tmp_path, f"select_by={name}"))
    assert not (tmp_path / "run").exists()


# -- reusing a run folder -----------------------------------------------------------------------
def test_reusing_a_run_folder_needs_resume_or_overwrite(tmp_path):
    fit(config(tmp_path, "optim.epochs=1"))
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(StarftError, match=r"already holds a run .*--resume.*--overwrite"):
        fit(config(tmp_path, "optim.epochs=1"))
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before  # untouched
    (tmp_path / "run" / "notes.txt").write_text("mine")
    fit(config(tmp_path, "optim.epochs=1", "optim.lr=5e-4"), overwrite=True)
    steps = [r["step"] for r in rows(tmp_path / "run") if r["split"] == "train"]
    assert steps == [1, 2, 3, 4]  # a new metrics.jsonl, not appended to the old one
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # not a run file: kept
    with pytest.raises(StarftError, match="exclude each other"):
        fit(config(tmp_path, "optim.epochs=1"), resume="latest", overwrite=True)


def test_resume_without_checkpoint_is_an_error_unless_auto(tmp_path):
    with pytest.raises(StarftError, match=r"--resume: no checkpoint at .*--resume auto"):
        fit(config(tmp_path, "optim.epochs=1"), resume="latest")
    assert not (tmp_path / "run").exists()
    result = fit(config(tmp_path, "optim.epochs=1"), resume="auto")  # nothing to resume: fresh
    assert result.steps == 4
    (tmp_path / "run" / "checkpoints" / "latest.pt").unlink()
    with pytest.raises(StarftError, match=r"has final but no checkpoint"):
        fit(config(tmp_path, "optim.epochs=1"), resume="auto")


def test_cli_resume_flags(tmp_path, capsys):
    args = [
        "train",
        "--method",
        "flyp",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "data.train={num_classes: 4, num_samples: 32}",
        "optim.warmup_steps=1",
        "log.progress=false",
        "log.tensorboard=false",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main([*args, "--resume"]) == 2
    assert "--resume: no checkpoint" in one_error_line(capsys)
    assert main([*args, "--resume", "auto"]) == 0
    assert main(args) == 2
    assert "already holds a run" in one_error_line(capsys)
    assert main([*args, "--resume"]) == 0  # a finished run: resuming it changes nothing
    assert main([*args, "--overwrite"]) == 0


# -- file modes ---------------------------------------------------------------------------------
def test_run_files_follow_the_umask(tmp_path):
    fit(
        config(
            tmp_path,
            "method.name=ft",
            "data.val={num_classes: 4, num_samples: 16, seed: 1}",
            "optim.epochs=1",
        )
    )
    umask = starft_io._umask()
    checked = 0
    for path in (tmp_path / "run").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        want = (0o777 if path.is_dir() else 0o666) & ~umask
        assert mode == want, f"{path}: {oct(mode)} != {oct(want)}"
        checked += 1
    assert any((tmp_path / "run" / "best").glob("*head*")) and checked > 10


# -- one-line errors ----------------------------------------------------------------------------
CLI_TRAIN = [
    "train",
    "--method",
    "flyp",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "data.train={num_classes: 4, num_samples: 32}",
    "optim.warmup_steps=1",
    "log.tensorboard=false",
]


def test_output_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert main([*CLI_TRAIN, "--out", str(target)]) == 2
    assert "is a file, not a folder" in one_error_line(capsys)
    assert main([*CLI_TRAIN, "--out", str(target / "sub")]) == 2
    assert "is a file" in one_error_line(capsys)
    assert target.read_text() == "x"


def _unwritable(monkeypatch, folder):
    """``folder`` reads as not writable (chmod does not stop root, who runs CI here)."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if os.fspath(path) == os.fspath(folder) and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_read_only_output_folder_train_and_eval(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    _unwritable(monkeypatch, locked)
    assert main([*CLI_TRAIN, "--out", str(locked / "run")]) == 2
    assert f"'{locked}' is not writable" in one_error_line(capsys)
    assert main([*CLI_TRAIN, "--out", str(locked)]) == 2
    assert "is not writable" in one_error_line(capsys)

    import starft.eval

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated before checking the output folder")

    monkeypatch.setattr(starft.eval, "evaluate_model", no_evaluation)
    monkeypatch.setattr(starft.eval, "run_suite", no_evaluation)
    eval_args = ["eval", "--model", "starft-tiny-vit", "--dataset", "synthetic"]
    assert main([*eval_args, "--out", str(locked)]) == 2
    assert "is not writable" in one_error_line(capsys)
    suite = ["eval", "--model", "starft-tiny-vit", "--suite", "group-shift", "--root", "x"]
    assert main([*suite, "--out", str(locked / "r")]) == 2
    assert "is not writable" in one_error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_device_without_a_gpu(tmp_path, capsys):
    assert main([*CLI_TRAIN, "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "no CUDA GPU is available" in one_error_line(capsys)
    assert not (tmp_path / "r").exists()
    assert main(["eval", "--model", "starft-tiny-vit", "--dataset", "synthetic", "--device",
                 "cuda"]) == 2  # fmt: skip
    assert "no CUDA GPU is available" in one_error_line(capsys)
    assert main([*CLI_TRAIN, "--device", "tpu9", "--out", str(tmp_path / "r")]) == 2
    assert "is not a device name" in one_error_line(capsys)


def test_error_prints_on_its_own_line_after_the_progress_bar(tmp_path, capsys):
    assert main([*CLI_TRAIN, "--lr", "1e10", "--out", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys)
    assert "non-finite" in line and "at step" in line


# -- no half-made run folder --------------------------------------------------------------------
def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    lines = ["filepath,label"]
    for i in range(16):
        path = data / f"img{i}.png"
        if i == 5:
            path.write_bytes(b"not a png")
        else:
            Image.new("RGB", (32, 32), ((i % 2) * 255, 0, 0)).save(path)
        lines.append(f"{path.name},{i % 2}")
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    common = (
        "data.dataset=csv",
        f"data.train={{path: {data / 'train.csv'}, classnames: [red, black]}}",
        "data.batch_size=8",
        "optim.epochs=1",
    )
    with pytest.raises(StarftError, match=r"img5\.png"):
        fit(config(tmp_path, *common, name="strict"))
    assert not (tmp_path / "strict").exists()
    # A folder that existed before keeps everything that is not a run file.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(StarftError, match=r"img5\.png"):
        fit(config(tmp_path, *common, name="mine"))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["keep.txt"]


# -- logs ---------------------------------------------------------------------------------------
def test_epoch_summaries_and_the_resume_line(tmp_path, capsys, monkeypatch):
    cfg = ("data.val={num_classes: 4, num_samples: 16, seed: 1}", "log.progress=true")
    original = Trainer._save_checkpoint

    def crash_at_6(self):
        if self.step == 6:
            raise KeyboardInterrupt
        original(self)

    # The run dies after logging step 6 and before checkpointing it (checkpoint every 2 steps).
    monkeypatch.setattr(Trainer, "_save_checkpoint", crash_at_6)
    with pytest.raises(KeyboardInterrupt):
        fit(config(tmp_path, *cfg, "checkpoint_every_steps=2"))
    monkeypatch.setattr(Trainer, "_save_checkpoint", original)
    assert 6 in [r["step"] for r in rows(tmp_path / "run")]
    fit(config(tmp_path, *cfg, "checkpoint_every_steps=2"), resume="latest")
    out = capsys.readouterr().out
    summaries = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(summaries) == 2 and "epoch 1/2: train loss" in summaries[0]
    assert "val top1" in summaries[0] and summaries[0].endswith(" s")
    assert "resuming from step 4 of 8 (epoch 1)" in out
    keys = [(r["step"], r["split"]) for r in rows(tmp_path / "run")]
    assert len(keys) == len(set(keys)) and (8, "val") in keys


def test_resume_drops_rows_of_an_old_checkpoint_without_offset(tmp_path):
    from starft.train.run_folder import RunPlan, open_run_folder

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pt").write_bytes(b"x")
    lines = [json.dumps({"step": s, "split": "train"}) for s in (1, 2, 3, 4)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 5, "spl')
    (run / ".metrics.jsonl.abc.tmp").write_bytes(b"")
    plan = RunPlan(run, run / "checkpoints" / "latest.pt", (), False)
    open_run_folder(plan, None, 2)
    assert [r["step"] for r in rows(run)] == [1, 2]
    assert not (run / ".metrics.jsonl.abc.tmp").exists()


def test_cli_summary_is_printed_by_rank_zero_only(monkeypatch, capsys, tmp_path):
    import starft.train
    from starft.train import FitResult

    def fake_fit(config, resume=None, overwrite=False):
        return FitResult(tmp_path, tmp_path / "final", None, None, 1, main_process=False)

    monkeypatch.setattr(starft.train, "fit", fake_fit)
    assert main(["train", "--out", str(tmp_path / "x")]) == 0
    assert capsys.readouterr().out == ""
