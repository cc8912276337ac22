"""Atomic file writes and source provenance.

Every file starft produces (results, checkpoints, prediction tables) goes through these helpers so
that an interrupted run or a serialisation error never leaves a truncated file that a later
``starft report`` would silently read as a finished result.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_GIT_TIMEOUT_S = 2.0
# What open() and mkdir() ask for; the umask takes bits away (0644 / 0755 under umask 022).
FILE_MODE = 0o666
DIR_MODE = 0o777
# Temporary names of the atomic helpers here and of model folders being written: ".NAME.XXXX.tmp".
TEMP_SUFFIX = ".tmp"


@functools.cache
def _umask() -> int:
    # mkstemp creates files with mode 0600; result files should get the permissions an ordinary
    # open() would give them. Reading the umask requires setting it, so do it once.
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _atomic_open(path: str | os.PathLike[str], mode: str) -> Iterator[IO[Any]]:
    """Yield a temp file beside ``path``; on success fsync it and rename it over ``path``.

    The temp file lives in the same directory so ``os.replace`` is a same-filesystem rename, which
    POSIX guarantees to be atomic: readers see either the old file or the complete new one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, FILE_MODE & ~_umask())
        os.replace(tmp_name, target)
    except BaseException:
        # BaseException too: a KeyboardInterrupt mid-write must not leave a stray temp file.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def follow_umask(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the mode an ordinary ``open()``/``mkdir()`` would (mkstemp/mkdtemp: 0600/0700).

    A folder is fixed recursively, so a model folder written under a temporary name ends up
    readable by the users the umask lets read it (e.g. the rest of a shared cluster).
    """
    path = Path(path)
    if path.is_dir():
        os.chmod(path, DIR_MODE & ~_umask())
        for child in path.iterdir():
            follow_umask(child)
    else:
        os.chmod(path, FILE_MODE & ~_umask())


def make_temp_dir(target: str | os.PathLike[str]) -> Path:
    """A new empty folder beside ``target`` (``.NAME.XXXX.tmp``) with the umask's mode."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent))
    os.chmod(tmp, DIR_MODE & ~_umask())
    return tmp


def remove_stale_temp(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the ``.NAME.XXXX.tmp`` files and folders a killed process left in ``folder``.

    Only call this on a folder no other process is writing to (a run folder at the start of a run).
    """
    import shutil

    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def check_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> None:
    """Fail with one line unless ``path`` is (or can be created as) a folder this user can write.

    Cheap and without side effects (nothing is created), so commands call it before any work.
    """
    from starft.errors import StarftError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StarftError(f"{what} '{path}' is a file, not a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise StarftError(f"{what} '{path}' cannot be created: '{existing}' is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == path:
            raise StarftError(f"{what} '{path}' is not writable (check its permissions)")
        raise StarftError(
            f"{what} '{path}' cannot be created: '{existing}' is not writable (check its "
            "permissions)"
        )


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename), creating parent dirs."""
    with _atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically, creating parent dirs."""
    with _atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (keys in insertion order, trailing newline) to ``path`` atomically."""
    # Serialise before opening anything: a non-serialisable object then fails without touching disk.
    text = json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"
    atomic_write_text(path, text)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` atomically, creating parent dirs."""
    import torch  # local import keeps this module usable by torch-free tooling

    with _atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
            # Reading HEAD must never take the index lock a concurrent git command may need.
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@functools.cache
def git_hash() -> str | None:
    """Commit hash of the starft source checkout, or None when starft is not run from one.

    Git is asked from the package's own directory, so the answer describes the code that runs, not
    the user's working directory. An installed copy (site-packages) inside some other repository
    (e.g. a project that keeps its venv in-tree) would otherwise report that project's commit, so
    the package's ``__init__.py`` must be tracked by the repository that answers.
    """
    pkg_dir = Path(__file__).resolve().parent.parent
    head = _git(["rev-parse", "HEAD"], pkg_dir)
    if not head:
        return None
    if _git(["ls-files", "--error-unmatch", "__init__.py"], pkg_dir) is None:
        return None
    return head
