"""Process-group set-up for ``torchrun`` (the only launcher starft supports).

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with ``WORLD_SIZE`` unset or 1 nothing
here touches ``torch.distributed``.
"""

from __future__ import annotations

import os

import torch

from starft.errors import StarftError
from starft.utils.distributed import DistInfo


def init_distributed() -> DistInfo:
    """Initialise the default process group from torchrun's environment (NCCL on GPU, else gloo)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(rank=0, world_size=1, local_rank=0)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into every rank's ``module``, in place."""
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=src)


def shutdown_distributed() -> None:
    """Wait for every rank, then tear the process group down (end of a torchrun command)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` -> this rank's GPU if there is one, else the CPU; a named device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", info.local_rank)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise StarftError(
            f"device '{name}' is not a device name (use auto, cpu, cuda or cuda:N)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise StarftError(
                f"device '{name}': no CUDA GPU is available to this process (use --device cpu "
                "or auto)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise StarftError(
                f"device '{name}': this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            )
    return device


def raise_on_any_rank(info: DistInfo, error: BaseException | None) -> None:
    """Raise on every rank if set-up failed on any rank (in a single process: raise ``error``).

    Without this, a rank that fails before the first collective exits while the others wait for
    it until the collective times out (30 minutes by default). Every rank takes part; a rank that
    failed raises its own error, the others the first failing rank's message. Starft errors are
    marked ``all_ranks`` so that the command line prints one line, on rank 0.
    """
    if info.world_size <= 1:
        if error is not None:
            raise error
        return
    import torch.distributed as dist

    mine = None if error is None else str(error) or type(error).__name__
    messages: list[str | None] = [None] * info.world_size
    dist.all_gather_object(messages, mine)
    failed = [rank for rank, message in enumerate(messages) if message is not None]
    if not failed:
        return
    if error is not None:
        if isinstance(error, StarftError):  # rank 0 prints its own error or the agreed one
            error.all_ranks = True  # type: ignore[attr-defined]
        raise error
    first = failed[0]
    agreed = StarftError(f"{messages[first]} (on rank {first})")
    agreed.all_ranks = True  # type: ignore[attr-defined]
    raise agreed from None


def resolve_autocast(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``precision`` (``auto``: bf16 on GPUs that support it, fp32 on CPU)."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    table = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in table:
        raise StarftError(f"precision must be auto, fp32, bf16 or fp16, got '{precision}'")
    if precision == "fp16" and device.type != "cuda":
        raise StarftError("precision fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
    return table[precision]
