"""The run folder's life cycle: checked before any work, then started afresh, replaced or resumed.

Rules (README "Train"):

- a fresh run refuses a folder that already holds a run unless ``overwrite`` (then the run's own
  entries, :data:`RUN_ENTRIES`, are removed; other files in the folder are left alone);
- ``resume="latest"`` (the CLI's bare ``--resume``) needs ``OUT/checkpoints/latest.pt``;
- ``resume="auto"`` (``--resume auto``) continues from it if it exists, else starts afresh; a
  folder with exported weights or results but no checkpoint is refused (nothing can continue it,
  and they are not silently replaced);
- ``resume=PATH`` continues from that checkpoint file.

Nothing here writes until :func:`open_run_folder`, which the loop calls once every up-front check
(config, data, model, checkpoint) has passed, so a bad input never leaves a half-made folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from starft.errors import StarftError
from starft.utils.io import atomic_write_text, check_output_dir, remove_stale_temp

# Everything a run writes into its folder (and --overwrite removes).
RUN_ENTRIES = (
    "config.yaml",
    "metrics.jsonl",
    "prepare.json",
    "tensorboard",
    "checkpoints",
    "results",
    "best",
    "final",
    "teacher_cache",
)
# Entries that mean a run got somewhere: `--resume auto` without a checkpoint refuses to drop them.
FINISHED_ENTRIES = ("results", "best", "final")
CHECKPOINT = Path("checkpoints") / "latest.pt"
RESUME_LATEST = "latest"
RESUME_AUTO = "auto"


@dataclass
class RunPlan:
    out_dir: Path
    checkpoint: Path | None  # resume from this file; None = fresh start
    clear: tuple[str, ...]  # run entries to remove before starting
    created: bool  # the folder did not exist (a failed fresh run removes it again)

    @property
    def own_checkpoint(self) -> bool:
        """Resuming from this folder's own checkpoint (its metrics.jsonl continues)."""
        return self.checkpoint is not None and self.checkpoint == self.out_dir / CHECKPOINT


def plan_run_folder(
    out_dir: str | Path, resume: str | Path | None, overwrite: bool = False
) -> RunPlan:
    """Decide how the run uses ``out_dir``; a one-line error for every refusal. Writes nothing."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    if resume is not None and overwrite:
        raise StarftError("--resume and --overwrite exclude each other: continue or replace")
    present = tuple(name for name in RUN_ENTRIES if (out_dir / name).exists())
    created = not out_dir.exists()
    latest = out_dir / CHECKPOINT
    if resume is None:
        if present and not overwrite:
            raise StarftError(
                f"output folder '{out_dir}' already holds a run ({', '.join(present)}): continue "
                "it with --resume, replace it with --overwrite, or choose another --out"
            )
        return RunPlan(out_dir, None, present, created)
    if str(resume) == RESUME_AUTO:
        if latest.is_file():
            return RunPlan(out_dir, latest, (), created)
        finished = [name for name in FINISHED_ENTRIES if name in present]
        if finished:
            raise StarftError(
                f"--resume auto: '{out_dir}' has {', '.join(finished)} but no checkpoint to "
                "continue from: replace it with --overwrite or choose another --out"
            )
        return RunPlan(out_dir, None, present, created)  # a run killed before its first checkpoint
    if str(resume) == RESUME_LATEST:
        if not latest.is_file():
            raise StarftError(
                f"--resume: no checkpoint at '{latest}' (use --resume auto to start afresh when "
                "there is none)"
            )
        return RunPlan(out_dir, latest, (), created)
    path = Path(resume)
    if not path.is_file():
        raise StarftError(f"checkpoint '{path}' does not exist")
    if path.resolve() == latest.resolve():
        return RunPlan(out_dir, latest, (), created)
    if present:
        raise StarftError(
            f"output folder '{out_dir}' already holds a run ({', '.join(present)}); to continue "
            f"from '{path}' choose an empty --out"
        )
    return RunPlan(out_dir, path, (), created)


def open_run_folder(plan: RunPlan, metrics_offset: int | None, step: int) -> None:
    """Create the folder, remove what the plan replaces and what a killed process left behind.

    ``metrics_offset``: size of metrics.jsonl when the resumed checkpoint was written; rows after
    it (logged after that checkpoint by the process that died) are dropped, so no step is logged
    twice. A checkpoint without it (older starft) drops the rows after its ``step`` instead.
    """
    out_dir = plan.out_dir
    for name in plan.clear:
        _remove(out_dir / name)
    out_dir.mkdir(parents=True, exist_ok=True)
    for folder in (out_dir, out_dir / "checkpoints", out_dir / "results"):
        remove_stale_temp(folder)
    metrics = out_dir / "metrics.jsonl"
    if not (plan.own_checkpoint and metrics.is_file()):
        return
    if metrics_offset is not None:
        if metrics.stat().st_size > metrics_offset:
            with open(metrics, "r+b") as fh:
                fh.truncate(metrics_offset)
        return
    lines = metrics.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _row_step(line) <= step]
    if len(kept) < len(lines):
        atomic_write_text(metrics, "".join(kept))


def _row_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62  # a line torn by the kill: dropped


def remove_failed_run(plan: RunPlan) -> None:
    """Undo a fresh run that failed before its first checkpoint: nothing half-made stays."""
    for name in RUN_ENTRIES:
        _remove(plan.out_dir / name)
    if plan.created and plan.out_dir.is_dir() and not any(plan.out_dir.iterdir()):
        plan.out_dir.rmdir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
