"""The frozen teachers' image-feature cache: exact, resumable, never used on random transforms."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torchvision import transforms as T

from _run_configs import tiny_run_config
from starft.data import create_dataset
from starft.data.base import ClassificationDataset
from starft.data.determinism import fixed_images, random_transform_step, row_is_deterministic
from starft.errors import StarftError
from starft.methods.feature_cache import ImageFeatureCache
from starft.methods.teacher import FrozenTeacher
from starft.models import create_model
from starft.train import Trainer, fit
from starft.train.teacher_cache import setup_teacher_caches

TOL = 1e-6


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("starft-tiny-vit")


def test_cached_features_equal_uncached(model):
    teacher = FrozenTeacher(model)
    images = torch.randn(6, 3, 32, 32)
    plain = teacher.image_features(images)
    teacher.image_cache = ImageFeatureCache(10, model.embed_dim)
    index = torch.tensor([0, 1, 2, 3, 4, 5])
    first = teacher.image_features(images, index)  # misses: encoded and stored
    assert teacher.image_cache.misses == 6 and teacher.image_cache.hits == 0
    again = teacher.image_features(images, index)  # hits: looked up, no teacher pass
    assert teacher.image_cache.hits == 6
    assert (first - plain).abs().max() <= TOL and (again - plain).abs().max() <= TOL
    # A batch mixing cached rows (0, 1) with new ones (6, 7): cached rows keep their stored value.
    mixed = teacher.image_features(images[[0, 1, 2, 3]], torch.tensor([0, 1, 6, 7]))
    assert torch.equal(mixed[:2], again[:2])
    assert (mixed - plain[[0, 1, 2, 3]]).abs().max() <= TOL
    assert teacher.image_cache.filled.sum() == 8


def test_cache_rejects_rows_outside_the_table(model):
    cache = ImageFeatureCache(4, model.embed_dim)
    with pytest.raises(StarftError, match=r"outside \[0, 4\)"):
        cache.store(torch.tensor([1, 4]), torch.zeros(2, model.embed_dim))
    with pytest.raises(StarftError, match="same dataset row twice"):
        cache.store(torch.tensor([1, 1]), torch.zeros(2, model.embed_dim))


def test_random_or_unknown_transforms_are_detected(model):
    assert random_transform_step(model.preprocess_val) is None
    assert random_transform_step(model.preprocess_train) == "RandomResizedCrop"
    assert random_transform_step(T.Compose([T.Resize(8), lambda x: x])) == "<lambda>"
    assert random_transform_step(T.Compose([T.Compose([T.RandomHorizontalFlip()])])) is not None
    assert random_transform_step(None) is None


def test_datasets_must_declare_fixed_images(tmp_path):
    synthetic = create_dataset("synthetic", num_classes=2, num_samples=4)
    assert fixed_images(synthetic)
    for name in ("a", "b"):  # one file per row, read by the base reader: fixed
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "x.png")
    assert fixed_images(create_dataset("imagefolder", root=str(tmp_path)))

    class Drawn(ClassificationDataset):  # overrides read_image without the promise
        def read_image(self, index):
            raise AssertionError("not read")

    drawn = Drawn(classnames=["a"], labels=[0])
    assert not fixed_images(drawn)
    assert "fixed_images" in row_is_deterministic(drawn)


def test_cache_is_off_for_random_transforms_and_forced_modes_refuse(model, tmp_path):
    from starft.methods import Task, create_method

    method = create_method("starft", model, Task(["a", "b"], ["a photo of a {}."]))
    train = create_dataset("synthetic", num_classes=2, num_samples=4, transform=None)
    train.transform = model.preprocess_train
    caches = setup_teacher_caches("auto", method, train, tmp_path)
    assert not caches.entries and "RandomResizedCrop" in caches.describe()
    assert method.teacher.image_cache is None
    with pytest.raises(StarftError, match="teacher_cache=memory would not be exact"):
        setup_teacher_caches("memory", method, train, tmp_path)
    train.transform = model.preprocess_val
    caches = setup_teacher_caches("auto", method, train, tmp_path)
    assert [name for name, _, _ in caches.entries] == ["teacher"]
    assert method.teacher.image_cache is not None


@pytest.mark.parametrize(
    ("name", "cached"),
    [("starft", True), ("carft", True), ("lipsum", True), ("flyp_distill", True), ("carot", False)],
)
def test_every_frozen_teacher_gets_a_cache(model, tmp_path, name, cached):
    from starft.methods import Task, create_method

    task = Task(["a", "b"], ["a photo of a {}.", "a sketch of a {}."])
    method = create_method(name, model, task)
    train = create_dataset("synthetic", num_classes=2, num_samples=4)
    train.transform = model.preprocess_val
    caches = setup_teacher_caches("auto", method, train, tmp_path)
    assert bool(caches.entries) == cached  # CaRot's EMA teacher changes: never cached


def _record_teacher(monkeypatch):
    """Compare every cached teacher answer in a run with a fresh, uncached encoding."""
    original = FrozenTeacher.image_features
    seen = {"checked": 0, "worst": 0.0}

    def checked(self, images, index=None):
        out = original(self, images, index)
        if self.image_cache is not None:
            reference = self._encode_images(images)
            seen["worst"] = max(seen["worst"], float((out - reference).abs().max()))
            seen["checked"] += 1
        return out

    monkeypatch.setattr(FrozenTeacher, "image_features", checked)
    return seen


@pytest.mark.parametrize(("method", "mode"), [("starft", "auto"), ("flyp_distill", "disk")])
def test_training_with_the_cache_matches_uncached_features(tmp_path, monkeypatch, method, mode):
    seen = _record_teacher(monkeypatch)
    stats = {}
    original_run = Trainer._run

    def run(self, resumed):
        try:
            return original_run(self, resumed)
        finally:
            stats.update(self.teacher_caches.stats())

    monkeypatch.setattr(Trainer, "_run", run)
    extra = ("method.decay=none",) if method == "starft" else ()  # λ > 0 in every epoch
    cfg = tiny_run_config(tmp_path, method, "data.augment=false", f"teacher_cache={mode}", *extra)
    fit(cfg)
    assert seen["checked"] == 8 and seen["worst"] <= TOL  # 2 epochs x 4 steps
    assert stats == {"misses": 64, "hits": 64}  # epoch 0 fills the 64 rows, epoch 1 reads them
    if mode == "disk":
        assert (tmp_path / "run" / "teacher_cache" / "teacher.rank0.f32").is_file()


class Crash(Exception):
    pass


def test_resume_keeps_the_cache_exact(tmp_path, monkeypatch):
    extra = ("data.augment=false", "checkpoint_every_steps=1", "method.decay=none")
    full = fit(tiny_run_config(tmp_path, "starft", *extra, name="full"))

    original = Trainer._optimizer_step

    def crashing_step(self, *args):
        original(self, *args)
        if self.step == 6:  # mid-epoch 1, after epoch 0 filled the cache
            raise Crash

    monkeypatch.setattr(Trainer, "_optimizer_step", crashing_step)
    with pytest.raises(Crash):
        fit(tiny_run_config(tmp_path, "starft", *extra, name="resumed"))
    monkeypatch.setattr(Trainer, "_optimizer_step", original)
    assert (tmp_path / "resumed" / "teacher_cache" / "teacher.rank0.pt").is_file()

    encoded = []
    original_encode = FrozenTeacher._encode_images
    monkeypatch.setattr(
        FrozenTeacher,
        "_encode_images",
        lambda self, images: encoded.append(len(images)) or original_encode(self, images),
    )
    resumed = fit(tiny_run_config(tmp_path, "starft", *extra, name="resumed"), resume="auto")
    assert encoded == []  # every row came back from the saved cache
    assert resumed.steps == full.steps
    a = load_file(str(tmp_path / "full" / "final" / "open_clip_model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "final" / "open_clip_model.safetensors"))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_trainer_logs_the_share_of_time_spent_waiting_for_data(tmp_path):
    fit(tiny_run_config(tmp_path, "flyp", "optim.epochs=1"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    shares = [r["data_wait_share"] for r in rows if r["split"] == "train"]
    assert len(shares) == 4 and all(0.0 <= s <= 1.0 for s in shares)
