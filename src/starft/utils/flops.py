"""FLOPs of a computation and model FLOPs utilisation (MFU).

MFU = (FLOPs the model needs per step) / (step time x the device's peak FLOP/s). The FLOPs are
counted, not estimated from a formula: PyTorch's ``FlopCounterMode`` sees every matrix multiply,
convolution and attention kernel of one real forward + backward pass (2 FLOPs per multiply-add;
element-wise work such as norms and activations is not counted, as in the usual MFU convention).
Because the count comes from the actual step, it includes what the method adds to the model: the
teacher's forward pass in StarFT, the text tower on the spurious captions, the trimmed text length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.flop_counter import FlopCounterMode

#: dense bf16 tensor-core peak in TFLOP/s by ``torch.cuda.get_device_name()`` (vendor data sheets;
#: SXM parts). A device not listed needs its peak given explicitly.
PEAK_BF16_TFLOPS = {
    "NVIDIA H200": 989.4,
    "NVIDIA H100 80GB HBM3": 989.4,
    "NVIDIA H100 PCIe": 756.0,
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA A100-SXM4-40GB": 312.0,
    "NVIDIA L40S": 362.1,
}


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matrix multiplies, convolutions and attention run by ``fn()``."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def mfu(flops_per_step: float, seconds_per_step: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over the device's peak."""
    if seconds_per_step <= 0 or peak_tflops <= 0:
        raise ValueError("step time and peak FLOP/s must be positive")
    return flops_per_step / seconds_per_step / (peak_tflops * 1e12)
