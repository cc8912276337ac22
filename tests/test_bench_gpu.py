"""MFU's FLOP count against hand counts, and the GPU benchmark script end to end on the CPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from starft.utils.flops import count_flops, mfu

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_flops_of_a_linear_layer_forward_and_backward_match_a_hand_count():
    layer = nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)

    def step():
        layer(x).sum().backward()

    # forward x @ W^T: 2*3*8*4; backward dL/dx = g @ W: 2*3*4*8; dL/dW = g^T @ x: 2*4*3*8
    assert count_flops(step) == 3 * (2 * 3 * 8 * 4)
    with torch.no_grad():
        assert count_flops(lambda: layer(x)) == 2 * 3 * 8 * 4


def test_flops_of_a_convolution_match_a_hand_count():
    conv = nn.Conv2d(2, 3, kernel_size=3)
    with torch.no_grad():
        flops = count_flops(lambda: conv(torch.randn(1, 2, 5, 5)))
    # 3x3 output positions x 3 output channels, each 2*3*3 multiply-adds
    assert flops == 2 * (3 * 3 * 3) * (2 * 3 * 3)


def test_mfu_is_achieved_over_peak():
    assert mfu(1e12, 0.5, 4.0) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mfu(1e12, 0.0, 4.0)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_bench_smoke_on_cpu(tmp_path):
    out = tmp_path / "gpu_bench.json"
    gpu_bench = _load("gpu_bench")
    argv = ["--device", "cpu", "--smoke", "--peak-tflops", "1", "--out", str(out)]
    result = gpu_bench.main(argv)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    flyp, starft = result["train"]["flyp"], result["train"]["starft"]
    for run in (flyp, starft):
        assert run["flops_per_step"] > 0 and 0 < run["mfu"] < 1
    # StarFT's step adds the teacher's forward pass and the spurious captions to FLYP's.
    assert starft["flops_per_step"] > flyp["flops_per_step"]
    head = result["eval"]["head"]
    assert head["tokenize_fast_identical"] is True
    assert head["head_batched_default_s"] > 0 and head["head_class_by_class_s"] > 0
    assert result["eval"]["features"]["images_per_s_batch_2"] > 0
