"""README's python code blocks run as written (on the tiny model, nothing downloaded)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def test_readme_has_the_library_blocks():
    blocks = readme_blocks()
    assert len(blocks) >= 4
    assert any("StepInfo.at(" in block and "method(batch" in block for block in blocks)
    assert any("starft.train.fit(" in block for block in blocks)


def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    """Every block, in order, in a folder holding what the README's commands would have made."""
    import torch

    from starft.models import create_model, save_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "synthetic_starft.yaml", tmp_path / "configs")
    torch.manual_seed(0)
    # What `starft train --config configs/synthetic_starft.yaml` leaves for the loading example.
    save_model(create_model("starft-tiny-vit"), tmp_path / "runs" / "synthetic_starft" / "best")
    for number, block in enumerate(readme_blocks(), start=1):
        namespace: dict = {"__name__": f"readme_block_{number}"}
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the diagnosis
            pytest.fail(f"README python block {number} fails: {type(error).__name__}: {error}")
    assert (tmp_path / "my_model" / "open_clip_config.json").is_file()
    assert (tmp_path / "runs" / "lib" / "final" / "open_clip_model.safetensors").is_file()
