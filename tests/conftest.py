"""Shared test set-up: offline, quiet, and small."""

from __future__ import annotations

import logging
import os

import pytest

# Nothing in the test-suite may download weights or datasets.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# open_clip warns about every randomly initialised model; the tiny test models are meant to be.
logging.getLogger().setLevel(logging.ERROR)


@pytest.fixture
def tiny_model():
    import torch

    from starft.models import create_model

    torch.manual_seed(0)
    return create_model("starft-tiny-vit")
