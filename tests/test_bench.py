"""`starft bench` times the trainer's own step function, with and without the teacher cache."""

from __future__ import annotations

from _run_configs import tiny_run_config
from starft.bench import BenchConfig, BenchSteps, run_bench
from starft.train import Trainer, fit
from starft.train.steps import StepLoop


def test_bench_and_fit_run_the_same_step_function(tmp_path, monkeypatch):
    assert BenchSteps.train_step is Trainer.train_step is StepLoop.train_step
    calls: list[tuple[str, int]] = []
    original = StepLoop.train_step

    def counted(self, micro_batches):
        batches = list(micro_batches)
        calls.append((type(self).__name__, len(batches)))
        return original(self, batches)

    monkeypatch.setattr(StepLoop, "train_step", counted)
    config = BenchConfig(
        method="starft",
        batch_size=4,
        steps=2,
        warmup=1,
        num_classes=4,
        accum_steps=2,
        augment=False,
    )
    result = run_bench(config)
    assert calls == [("BenchSteps", 2)] * 3  # warm-up + timed steps, 2 micro-batches each
    assert result["step_time_s"] > 0 and result["accum_steps"] == 2
    # The warm pass filled the cache: the timed steps looked the teacher's features up.
    assert result["teacher_image_cache"].startswith("memory (")
    assert not result["teacher_image_cache"].startswith("memory (0/")
    calls.clear()
    fit(tiny_run_config(tmp_path, "flyp", "optim.epochs=1"))
    assert calls == [("Trainer", 1)] * 4


def test_bench_without_a_cache_on_random_transforms():
    result = run_bench(
        BenchConfig(method="flyp_distill", batch_size=4, steps=1, warmup=0, num_classes=4)
    )
    assert result["teacher_image_cache"].startswith("off")
    result = run_bench(BenchConfig(method="flyp", batch_size=4, steps=1, warmup=0, num_classes=4))
    assert result["teacher_image_cache"] == "no frozen teacher"
