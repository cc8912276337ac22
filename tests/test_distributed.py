"""DDP equals one process over the global batch: losses, method gradients, and whole runs.

Two gloo processes on the CPU (spawned by :func:`_ddp_workers.launch`, which sets the torchrun
variables inside the workers only) are compared with a single process over the global batch run
here, in the test process, where ``WORLD_SIZE`` is never set. By design, contrastive and Star
terms use *local loss + all_gather with gradients*, so that the mean over ranks of the local losses
is the global loss and DDP's averaged gradients are the global loss's gradients; and the loop
builds global batches and draws per-step randomness so that 2 ranks x batch B train exactly like
1 process x batch 2B.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _ddp_workers import (
    CLIP_LEAVES,
    CLIP_SCALE,
    DISTILL_LEAVES,
    GLOBAL_BATCH,
    LOSS_CASES,
    METHOD_CASES,
    STAR_LEAVES,
    STAR_SCALE,
    TEACHER_SCALE,
    WORLD_SIZE,
    build_method,
    fit_worker,
    launch,
    loss_inputs,
    loss_worker,
    method_batch,
    method_worker,
    step_info,
)
from starft.losses import clip_contrastive_loss, self_distillation_loss, star_regularization

TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# The term of each regularised method that must be non-zero for the comparison to mean anything.
REGULARISERS = {
    "starft": "star",
    "carft": "context_kl",
    "carot": "self_distillation",
    "lipsum": "energy_gap",
    "robustvit": "alignment",
}
LOCAL_BATCH = GLOBAL_BATCH // WORLD_SIZE


def local(rank: int) -> slice:
    return slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def assert_close_named(
    actual: torch.Tensor, expected: torch.Tensor, name: str, *, atol: float, rtol: float
) -> None:
    """``assert_close`` whose failure message starts with the tensor's name."""
    torch.testing.assert_close(
        actual, expected, atol=atol, rtol=rtol, msg=lambda detail: f"{name}: {detail}"
    )


@pytest.fixture(autouse=True)
def _single_process_env(monkeypatch):
    """The reference runs in this process: it must never look like a torchrun rank."""
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)


# -- 1. loss modules ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loss_runs(tmp_path_factory) -> list[dict]:
    """Every loss case on 2 ranks (one launch); one result dict per rank."""
    out = tmp_path_factory.mktemp("ddp_losses")
    launch(loss_worker, str(out))
    return [torch.load(out / f"loss_rank{r}.pt") for r in range(WORLD_SIZE)]


def reference_loss(case: dict) -> dict:
    """Single-process functional loss over all 8 rows, and its gradients."""
    full = loss_inputs()
    if case["kind"] == "clip":
        leaves = {k: full[k].clone().requires_grad_(True) for k in CLIP_LEAVES}
        scale = torch.tensor(CLIP_SCALE, requires_grad=True)
        loss = clip_contrastive_loss(leaves["image"], leaves["text"], scale)
    elif case["kind"] == "distill":
        leaves = {k: full[k].clone().requires_grad_(True) for k in DISTILL_LEAVES}
        scale = torch.tensor(CLIP_SCALE, requires_grad=True)
        loss = self_distillation_loss(
            leaves["image"],
            leaves["text"],
            full["teacher_image"],
            full["teacher_text"],
            scale,
            TEACHER_SCALE,
        )
    else:
        leaves = {k: full[k].clone().requires_grad_(True) for k in STAR_LEAVES}
        scale = None
        loss = star_regularization(
            leaves["image"],
            leaves["spurious_text"],
            full["teacher_image"],
            full["teacher_spurious_text"],
            torch.tensor(case["labels"]),
            STAR_SCALE,
            mask_same_class=case["mask"],
        )
    loss.backward()
    return {
        "loss": loss.detach(),
        "grads": {k: v.grad for k, v in leaves.items()},
        "scale_grad": None if scale is None else scale.grad,
    }


@pytest.mark.parametrize("case", list(LOSS_CASES))
def test_loss_module_matches_single_process_over_global_batch(loss_runs, case):
    ref = reference_loss(LOSS_CASES[case])
    ranks = [run[case] for run in loss_runs]

    # Rank r's loss is the mean over its 4 local rows; equal local sizes make the mean over
    # ranks the mean over all 8 rows, i.e. the single-process loss.
    losses = torch.stack([r["loss"] for r in ranks])
    assert torch.isfinite(losses).all()
    mean_loss = losses.mean()
    # A loss of ~2 in float32 is only good to ~2e-7 (one ulp), and the ranks sum in another
    # order than one process: compare relative to the value, not to a few ulps.
    torch.testing.assert_close(mean_loss, ref["loss"], atol=1e-6, rtol=1e-5)
    print(f"{case}: |mean rank loss - single| = {max_abs_diff(mean_loss, ref['loss']):.2e}")

    # Gradient scaling. Let L = (1/W) Σ_r' L_r' be the global (single-process) loss. A local
    # feature x_r enters its own rank's rows directly and every rank's columns through
    # all_gather; the backward of torch.distributed.nn's all_gather sums, over all ranks, the
    # gradient each rank computed for slot r and returns it to rank r. So after the W ranks'
    # (simultaneous) backward passes, rank r holds d(Σ_r' L_r')/dx_r = W · dL/dx_r. (StarLoss's
    # image rows are not gathered, but only L_r depends on them: dL_r/dx_r = W · dL/dx_r as
    # well.) DDP then averages parameter gradients over ranks, dividing this factor W away:
    # (1/W) Σ_r (W·dL/dx_r)·dx_r/dθ = dL/dθ.
    for rank, result in enumerate(ranks):
        for name, grad in result["grads"].items():
            expected = WORLD_SIZE * ref["grads"][name][local(rank)]
            assert_close_named(grad, expected, f"rank {rank} d/d{name}", atol=1e-6, rtol=1e-5)
            diff = max_abs_diff(grad, expected)
            print(f"{case}: rank {rank} d/d{name}: |grad - W*single| = {diff:.2e}")

    if ref["scale_grad"] is not None:
        # The logit scale is not gathered: rank r's backward gives dL_r/ds only, and DDP's
        # average (1/W) Σ_r dL_r/ds is dL/ds, the single-process gradient (no factor W).
        mean_scale_grad = torch.stack([r["scale_grad"] for r in ranks]).mean()
        torch.testing.assert_close(mean_scale_grad, ref["scale_grad"], atol=1e-6, rtol=1e-5)
        diff = max_abs_diff(mean_scale_grad, ref["scale_grad"])
        print(f"{case}: |mean rank d/ds - single| = {diff:.2e}")


# -- 2. methods wrapped in DistributedDataParallel ----------------------------------------------
@pytest.fixture(scope="module")
def method_runs(tmp_path_factory) -> list[dict]:
    """Every method case on 2 ranks through DDP (one launch); one result dict per rank."""
    out = tmp_path_factory.mktemp("ddp_methods")
    launch(method_worker, str(out))
    return [torch.load(out / f"method_rank{r}.pt") for r in range(WORLD_SIZE)]


def test_step_randint_draws_for_the_global_batch():
    """Rank r's draws are the r-th slice of what one process draws for the global batch."""
    full = step_info(0, 1).randint(3, GLOBAL_BATCH)
    assert len(set(full)) > 1  # the 3-template FLYP case really mixes templates
    for rank in range(WORLD_SIZE):
        assert step_info(rank, WORLD_SIZE).randint(3, LOCAL_BATCH) == full[local(rank)]


@pytest.mark.parametrize("case", list(METHOD_CASES))
def test_method_under_ddp_matches_single_process(method_runs, case):
    method = build_method(case, rank=0, world_size=1)
    out = method(method_batch(), step_info(0, 1))
    out["loss"].backward()
    ranks = [run[case] for run in method_runs]

    assert set(ranks[0]["terms"]) == set(out)
    regulariser = REGULARISERS.get(METHOD_CASES[case][0])
    if regulariser is not None:
        assert float(out[regulariser].detach()) > 1e-3  # the regulariser takes part
    for key, value in out.items():
        mean = torch.stack([r["terms"][key] for r in ranks]).mean()
        torch.testing.assert_close(mean, value.detach(), atol=1e-6, rtol=1e-5)
        print(f"{case}: |mean rank {key} - single| = {max_abs_diff(mean, value.detach()):.2e}")

    ddp_grads = ranks[0]["grads"]
    single = dict(method.trainable_named_parameters())
    assert set(ddp_grads) == set(single)
    worst = (0.0, "")
    for name, param in single.items():
        if param.grad is None:
            assert ddp_grads[name] is None, name
            continue
        assert ddp_grads[name] is not None, name
        # Summation order differs between one process and two (all-reduce): the float32 noise
        # grows with the gradient's scale, while a real error (a missing gather, a wrong
        # normalisation) is of the gradient's own size, orders of magnitude above this bound.
        noise = 1e-5 * max(1.0, float(param.grad.abs().max()))
        assert_close_named(ddp_grads[name], param.grad, name, atol=noise, rtol=1e-4)
        worst = max(worst, (max_abs_diff(ddp_grads[name], param.grad), name))
    print(f"{case}: max |DDP grad - single grad| = {worst[0]:.2e} ({worst[1]})")


# -- 3. the training loop end to end ------------------------------------------------------------
def fit_overrides(out_dir: Path, batch_size: int) -> list[str]:
    return [
        f"out_dir={out_dir}",
        "device=cpu",
        "precision=fp32",
        "data.dataset=synthetic",
        "data.train={num_classes: 4, num_samples: 64, seed: 0}",
        f"data.batch_size={batch_size}",
        "data.augment=true",
        "optim.epochs=1",
        "optim.warmup_steps=1",
        "optim.lr=1e-3",
        # Adam divides by sqrt(v) + eps. Some gradients are exactly 0 in exact arithmetic (the
        # attention *key* bias: softmax ignores a per-row shift) but ~1e-9 of rounding noise in
        # float32, and with the default eps=1e-8 Adam turns that noise into ±lr steps whose sign
        # depends on summation order (1 vs 2 processes), ~1e-3 apart after 4 steps. eps=1e-4 is
        # far below the real gradients (~1e-2) and far above that noise.
        "optim.eps=1e-4",
        "log.progress=false",
        "log.tensorboard=false",
        "method.name=starft",
        # One epoch under the released per-epoch decay has λ = 0 throughout, which would skip
        # the Star term (and its cross-rank gathers) entirely; keep λ = 0.5 constant instead.
        "method.decay=none",
    ]


def test_fit_on_two_ranks_equals_one_process_with_double_batch(tmp_path):
    from safetensors.torch import load_file

    from starft.config import load_train_config
    from starft.models import create_model
    from starft.train import fit

    launch(fit_worker, fit_overrides(tmp_path / "ddp", batch_size=8))
    result = fit(load_train_config(None, fit_overrides(tmp_path / "single", batch_size=16)))
    assert result.steps == 64 // 16

    ddp = load_file(tmp_path / "ddp" / "final" / "open_clip_model.safetensors")
    single = load_file(tmp_path / "single" / "final" / "open_clip_model.safetensors")
    assert set(ddp) == set(single)
    worst = (0.0, "")
    for name, tensor in single.items():
        assert_close_named(ddp[name], tensor, name, atol=1e-5, rtol=0)
        worst = max(worst, (max_abs_diff(ddp[name], tensor), name))
    print(f"fit: max |2 ranks x 8 - 1 process x 16| = {worst[0]:.2e} ({worst[1]})")

    # Not trivially equal: both runs moved the weights away from the shared initialisation.
    torch.manual_seed(0)
    initial = create_model("starft-tiny-vit").model.state_dict()
    moved = max(max_abs_diff(single[k], initial[k]) for k in single)
    assert moved > 1e-4
    print(f"fit: max |trained - initial| = {moved:.2e}")


def test_a_setup_error_on_one_rank_ends_every_rank_with_one_message(tmp_path):
    import json

    from _ddp_workers import cli_worker

    argv = ["train", *fit_overrides(tmp_path / "run", batch_size=8)]
    launch(cli_worker, argv, 1, str(tmp_path))  # a hang would fail with a TimeoutError
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    assert [r["code"] for r in results] == [2, 2]
    lines = [line for r in results for line in r["err"].splitlines() if line.strip()]
    assert lines == ["starft: error: CSV file 'train.csv' is broken on rank 1's copy (on rank 1)"]
    assert not (tmp_path / "run").exists()  # nothing half-made


# -- 4. no collectives beyond DDP's gradient all-reduce and the feature gathers ------------------
# (collective, caller) pairs the training steps may issue besides DDP's own gradient all-reduce.
GATHER_FORWARD = ("all_gather", "losses/distributed:forward")  # features with gradients
GATHER_BACKWARD = ("all_reduce", "losses/distributed:backward")  # their gradients
GATHER_NO_GRAD = ("all_gather", "losses/distributed:gather_no_grad")  # teacher features, labels
CHECK_READ = ("all_reduce", "train/nonfinite:take")  # the non-finite check, on log steps only
LOG_EVERY = 2


@pytest.mark.parametrize("method", ["starft", "flyp"])
def test_training_steps_issue_only_feature_gathers_and_a_flag_reduce_per_log_step(tmp_path, method):
    import json
    from collections import Counter

    from _ddp_workers import collectives_worker

    accum = 2
    overrides = [
        *(o for o in fit_overrides(tmp_path / "run", batch_size=4) if "decay" not in o),
        f"method.name={method}",
        # A constant λ: with decay, StarFT's last steps of a 1-epoch run reach λ = 0 and skip
        # the Star term's gathers, so micro-batches would differ in their collectives.
        *(["method.decay=none"] if method == "starft" else []),
        f"optim.accum_steps={accum}",
        f"log.every_steps={LOG_EVERY}",
    ]
    launch(collectives_worker, overrides, str(tmp_path))
    for rank in range(WORLD_SIZE):
        report = json.loads((tmp_path / f"collectives_rank{rank}.json").read_text())
        steps = report["steps"]
        micro = steps * accum
        counts = Counter(tuple(call) for call in report["calls"])
        print(f"{method} rank {rank}: {steps} steps, {micro} micro-batches: {dict(counts)}")
        assert steps == 64 // (4 * WORLD_SIZE * accum)
        allowed = {GATHER_FORWARD, GATHER_BACKWARD, GATHER_NO_GRAD, CHECK_READ}
        assert set(counts) <= allowed, set(counts) - allowed
        # No buffer broadcast (a ViT has no batch norm) and the non-finite check's one reduce
        # per log step: none per optimiser step or micro-batch.
        assert counts[CHECK_READ] == steps // LOG_EVERY
        # The same gathers in every micro-batch, each differentiable one reduced once backward.
        assert counts[GATHER_FORWARD] > 0 and counts[GATHER_FORWARD] % micro == 0
        assert counts[GATHER_BACKWARD] == counts[GATHER_FORWARD]
        assert counts[GATHER_NO_GRAD] % micro == 0
