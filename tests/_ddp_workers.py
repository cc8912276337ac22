"""Worker processes and shared inputs for ``tests/test_distributed.py``.

``torch.multiprocessing`` with the ``spawn`` start method pickles a worker by its qualified name,
so workers must live in a module the children can import: ``tests/`` is on the parent's
``sys.path`` (pytest's rootdir-relative import) and ``spawn`` hands the parent's ``sys.path`` to
each child. The torchrun variables (``WORLD_SIZE``, ``RANK``, ...) are set *inside* the workers
only, so the test process itself always stays a single-process run.

Each launch runs every case of one test group, to pay the process start-up (importing torch and
open_clip, a few seconds on 2 cores) once per group. Workers write their results with
``torch.save`` into a folder the test owns.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

WORLD_SIZE = 2
GLOBAL_BATCH = 8
FEATURE_DIM = 16
CLIP_SCALE = 5.0  # contrastive multiplier s (a leaf, so its gradient is checked too)
STAR_SCALE = 10.0  # the teacher's fixed multiplier s0 (a float, as StarFT passes it)
TIMEOUT_S = 300  # collectives and the whole launch; a hung rendezvous fails instead of hanging

# -- loss-level cases ---------------------------------------------------------------------------
# Labels are the *global* batch; rank r owns rows [4r, 4r + 4).
LOSS_CASES: dict[str, dict[str, Any]] = {
    "clip": {"kind": "clip"},
    "star_mask_distinct_labels": {"kind": "star", "mask": True, "labels": [0, 1, 2, 3, 4, 5, 6, 7]},
    # Classes repeat inside a rank and across ranks: the mask must use the gathered labels.
    "star_mask_repeats": {"kind": "star", "mask": True, "labels": [0, 1, 2, 0, 1, 3, 0, 2]},
    "star_no_mask_repeats": {"kind": "star", "mask": False, "labels": [0, 1, 2, 0, 1, 3, 0, 2]},
    # Each rank holds a single class: a local-only mask would leave no negatives at all; with the
    # global mask every rank's rows see exactly the other rank's columns.
    "star_mask_one_class_per_rank": {
        "kind": "star",
        "mask": True,
        "labels": [0, 0, 0, 0, 1, 1, 1, 1],
    },
    # Every pair masked: every row has no negatives, the loss is 0 and must not be NaN.
    "star_mask_single_class": {"kind": "star", "mask": True, "labels": [3] * 8},
    # CaRot: soft targets from the teacher's logits over the global batch, in both directions.
    "self_distillation": {"kind": "distill"},
}
CLIP_LEAVES = ("image", "text")
STAR_LEAVES = ("image", "spurious_text")
DISTILL_LEAVES = ("image", "text")
TEACHER_SCALE = 8.0  # the EMA teacher's own multiplier s_T (a float: it gets no gradient)


def loss_inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    """Fixed normalised features of the global batch (identical in every process)."""
    generator = torch.Generator().manual_seed(seed)
    names = (
        "image",
        "text",
        "spurious_text",
        "teacher_image",
        "teacher_spurious_text",
        "teacher_text",
    )
    return {
        name: F.normalize(torch.randn(GLOBAL_BATCH, FEATURE_DIM, generator=generator), dim=-1)
        for name in names
    }


# -- method-level cases -------------------------------------------------------------------------
CLASSNAMES = ["tench", "goldfish", "shark", "ray"]
ONE_TEMPLATE = ["a photo of a {}."]
THREE_TEMPLATES = ["a photo of a {}.", "a drawing of a {}.", "a close-up photo of the {}."]
STUDENT_NOISE = 0.05
METHOD_LABELS = [0, 1, 2, 0, 1, 3, 0, 2]  # repeats within and across the two ranks
METHOD_CASES: dict[str, tuple[str, list[str], dict[str, Any]]] = {
    "starft": ("starft", ONE_TEMPLATE, {"lambda_star": 1.0, "decay": "none"}),
    "flyp": ("flyp", ONE_TEMPLATE, {}),
    "flyp_three_templates": ("flyp", THREE_TEMPLATES, {}),
    # Two draws per step (template, then descriptor) from the same per-step generator.
    "starft_random_templates": (
        "starft",
        THREE_TEMPLATES,
        {"lambda_star": 1.0, "decay": "none", "template_mode": "random", "mask_same_class": False},
    ),
    "carft": ("carft", THREE_TEMPLATES, {}),
    # Random templates, orthogonality, the cross-projection term and the EMA teacher's soft-CE.
    "carot": ("carot", THREE_TEMPLATES, {"lambda_cross": 0.05}),
    # Random texts drawn from the step's generator: identical on every rank.
    "lipsum": ("lipsum", ONE_TEMPLATE, {"num_texts": 16}),
    # Relevance maps from autograd.grad inside the DDP-wrapped forward; per-pixel mean losses.
    # (Not CFT: its BCE charges 100 for a pixel at exactly 1 outside the mask and ~16 at 1 − 6e-8,
    # and rounding-level differences between batch sizes decide which tied pixels hit 1.0.)
    "robustvit": ("robustvit", THREE_TEMPLATES, {}),
    "robustvit_on_flyp": ("robustvit", ONE_TEMPLATE, {"base": "flyp"}),
}


def method_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=generator)
    mask = torch.zeros(GLOBAL_BATCH, 32, 32)
    mask[:, 8:24, 4:20] = 1  # read by the relevance-guided methods only
    return {"image": images, "label": torch.tensor(METHOD_LABELS), "mask": mask}


def local_rows(batch: dict[str, torch.Tensor], rank: int, world_size: int) -> dict[str, Any]:
    size = GLOBAL_BATCH // world_size
    return {k: v[rank * size : (rank + 1) * size] for k, v in batch.items()}


def build_method(case: str, rank: int, world_size: int) -> Any:
    """The case's method around a tiny model seeded identically in every process."""
    from starft.methods import Task, create_method
    from starft.models import create_model

    name, templates, params = METHOD_CASES[case]
    torch.manual_seed(0)
    model = create_model("starft-tiny-vit")
    method = create_method(
        name, model, Task(CLASSNAMES, templates), params, rank=rank, world_size=world_size
    )
    # StarFT's teacher is a copy of the model taken at construction: at that point the student
    # *is* the teacher, the Star KL is 0 up to rounding and its gradient vanishes. Move the
    # student away from it (identically in every process) so the Star term really takes part.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in method.model.parameters():
            param.add_(STUDENT_NOISE * torch.randn(param.shape, generator=generator))
    method.train()
    return method


def step_info(rank: int, world_size: int) -> Any:
    from starft.methods import StepInfo
    from starft.train.sampling import seeded_generator

    return StepInfo(
        step=0,
        epoch=0,
        steps_per_epoch=10,
        total_steps=10,
        generator=seeded_generator(0, 0, 0),
        rank=rank,
        world_size=world_size,
    )


# -- launching ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(fn: Callable[..., None], *args: Any, nprocs: int = WORLD_SIZE) -> None:
    """Run ``fn(rank, nprocs, port, *args)`` in ``nprocs`` spawned processes; fail on a hang.

    Only ``OMP_NUM_THREADS`` is set for the children (and restored here afterwards); the
    torchrun variables are set by the workers themselves.
    """
    import torch.multiprocessing as mp

    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        context = mp.start_processes(
            fn,
            args=(nprocs, free_port(), *args),
            nprocs=nprocs,
            join=False,
            start_method="spawn",
        )
    finally:
        if saved is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=0.5):  # raises if a worker raised or died
            if time.monotonic() > deadline:
                raise TimeoutError(f"distributed workers did not finish within {TIMEOUT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
                process.join(5)


def _init_process_group(rank: int, world_size: int, port: int) -> None:
    """What torchrun would set up, plus a short collective timeout."""
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world_size),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        HF_HUB_OFFLINE="1",
    )
    logging.getLogger().setLevel(logging.ERROR)  # open_clip's "initialized randomly" warnings
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=TIMEOUT_S)
    )


def _shutdown() -> None:
    """Leave the job cleanly, on success only.

    The barrier keeps a rank from tearing gloo down while its peer is still finishing the last
    collective: without it, destroying right after a backward's collectives sometimes aborts a
    worker ("terminate called without an active exception"). A worker that raised skips this (a
    barrier against a peer stuck elsewhere would only hang); the launcher stops its peer.
    """
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


# -- workers ------------------------------------------------------------------------------------
def loss_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Every ``LOSS_CASES`` case: this rank's local loss and the gradients of its local leaves."""
    _init_process_group(rank, world_size, port)
    from starft.losses import ClipLoss, SelfDistillationLoss, StarLoss

    full = loss_inputs()
    size = GLOBAL_BATCH // world_size
    rows = slice(rank * size, (rank + 1) * size)
    results: dict[str, Any] = {}
    for name, case in LOSS_CASES.items():
        if case["kind"] == "clip":
            leaves = {k: full[k][rows].clone().requires_grad_(True) for k in CLIP_LEAVES}
            scale = torch.tensor(CLIP_SCALE, requires_grad=True)
            loss = ClipLoss(rank, world_size)(leaves["image"], leaves["text"], scale)
            loss = loss["contrastive"]
        elif case["kind"] == "distill":
            leaves = {k: full[k][rows].clone().requires_grad_(True) for k in DISTILL_LEAVES}
            scale = torch.tensor(CLIP_SCALE, requires_grad=True)
            loss = SelfDistillationLoss(rank, world_size)(
                leaves["image"],
                leaves["text"],
                full["teacher_image"][rows],
                full["teacher_text"][rows],
                scale,
                TEACHER_SCALE,
            )["self_distillation"]
        else:
            leaves = {k: full[k][rows].clone().requires_grad_(True) for k in STAR_LEAVES}
            scale = None
            loss = StarLoss(case["mask"], rank, world_size)(
                leaves["image"],
                leaves["spurious_text"],
                full["teacher_image"][rows],
                full["teacher_spurious_text"][rows],
                torch.tensor(case["labels"])[rows],
                STAR_SCALE,
            )["star"]
        loss.backward()
        results[name] = {
            "loss": loss.detach(),
            "grads": {k: v.grad for k, v in leaves.items()},
            "scale_grad": None if scale is None else scale.grad,
        }
    torch.save(results, Path(out_dir) / f"loss_rank{rank}.pt")
    _shutdown()


def method_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Every ``METHOD_CASES`` case through DDP: local loss terms and (rank 0) averaged grads."""
    _init_process_group(rank, world_size, port)
    from torch.nn.parallel import DistributedDataParallel

    batch = local_rows(method_batch(), rank, world_size)
    results: dict[str, Any] = {}
    for case in METHOD_CASES:
        method = build_method(case, rank, world_size)
        ddp = DistributedDataParallel(method)
        out = ddp(batch, step_info(rank, world_size))
        out["loss"].backward()
        entry: dict[str, Any] = {"terms": {k: v.detach() for k, v in out.items()}}
        if rank == 0:
            entry["grads"] = {
                k: None if p.grad is None else p.grad.clone()
                for k, p in method.trainable_named_parameters()
            }
        results[case] = entry
    torch.save(results, Path(out_dir) / f"method_rank{rank}.pt")
    _shutdown()


def fit_worker(rank: int, world_size: int, port: int, overrides: list[str]) -> None:
    """``starft.train.fit`` as one torchrun process (the process group is already up, so
    ``init_distributed`` keeps it, with its short timeout)."""
    _init_process_group(rank, world_size, port)
    from starft.config import load_train_config
    from starft.train import fit

    fit(load_train_config(None, overrides))
    _shutdown()


def cli_worker(
    rank: int, world_size: int, port: int, argv: list[str], fail_rank: int, out_dir: str
) -> None:
    """``starft`` CLI as one torchrun process; rank ``fail_rank`` fails while building its data.

    Writes this rank's exit code, stdout and stderr to ``out_dir/rank{rank}.json``.
    """
    import contextlib
    import io
    import json

    _init_process_group(rank, world_size, port)
    import starft.train.loop
    from starft.cli.main import main
    from starft.errors import StarftError

    if rank == fail_rank:

        def broken_data(*args: Any, **kwargs: Any) -> Any:
            raise StarftError(f"CSV file 'train.csv' is broken on rank {rank}'s copy")

        starft.train.loop.build_datasets = broken_data
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    result = {"code": code, "out": out.getvalue(), "err": err.getvalue()}
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))


# -- collectives of the training steps ------------------------------------------------------------
COUNTED_COLLECTIVES = (
    "all_reduce",
    "all_gather",
    "all_gather_into_tensor",
    "all_gather_object",
    "broadcast",
    "broadcast_object_list",
    "reduce",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "gather",
    "scatter",
    "barrier",
    "_broadcast_coalesced",  # DDP's buffer broadcast before each forward
)


def collectives_worker(
    rank: int, world_size: int, port: int, overrides: list[str], out_dir: str
) -> None:
    """``fit`` with every Python-level collective recorded while the epochs' steps run.

    Each call is recorded as ``(collective, "package/module:function")`` of its caller. DDP's own
    gradient all-reduce runs inside its C++ reducer and is not seen here; everything else is.
    """
    import json
    import sys

    import torch.distributed as dist

    _init_process_group(rank, world_size, port)
    from starft.config import load_train_config
    from starft.train import fit
    from starft.train.loop import Trainer

    calls: list[tuple[str, str]] = []
    counting = [False]

    def counted(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if counting[0]:
                code = sys._getframe(1).f_code
                where = Path(code.co_filename)
                calls.append((name, f"{where.parent.name}/{where.stem}:{code.co_name}"))
            return real(*args, **kwargs)

        return wrapper

    for name in COUNTED_COLLECTIVES:
        setattr(dist, name, counted(name, getattr(dist, name)))
    real_epoch = Trainer._train_epoch

    def train_epoch(self: Any) -> None:
        counting[0] = True
        try:
            real_epoch(self)
        finally:
            counting[0] = False

    Trainer._train_epoch = train_epoch  # type: ignore[method-assign]
    result = fit(load_train_config(None, overrides))
    report = {"steps": result.steps, "calls": calls}
    Path(out_dir, f"collectives_rank{rank}.json").write_text(json.dumps(report))
    _shutdown()
