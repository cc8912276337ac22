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


@pytest.fixture(scope="session")
def benchmark_trees(tmp_path_factory):
    """Fake copies of every benchmark layout under one root (built once per session).

    Returns ``(root, kwargs)``: ``kwargs[name]`` are tiny ``create_dataset`` arguments per dataset.
    Tests must not modify the tree; copy what they want to break.
    """
    from _fake_benchmarks import build_all

    root = tmp_path_factory.mktemp("benchmarks")
    return root, build_all(root)
