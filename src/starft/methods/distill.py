"""FLYP plus image-feature distillation from a frozen teacher.

The loss is FLYP's contrastive loss plus ``w * mean(1 - cos(f_student(x), f_teacher(x)))`` on the
normalised image features. With no teacher named, the teacher is a frozen copy of the model at the
start of training: the term then keeps the image features near the zero-shot ones (a feature-space
anchor, as in feature-distillation baselines of robust fine-tuning). With a named teacher it
transfers another model's image embedding into this one's image tower: the sandbox ViT is
pretrained this way against the sandbox ResNet's image features, with the ResNet's text tower
locked in, which gives every image a dense target in the shared space instead of only a caption
that names a random subset of its attributes.

With ``class_distill_weight`` > 0 a second term distils the teacher's zero-shot *class*
distribution: ``KL(p_T || p_S)`` where ``p = softmax(scale * f(x) @ W.T)`` over the task's class
heads ``W`` (class names x templates through each model's own, frozen, text tower). The cosine term
spreads its pull over every direction of the embedding; an attribute that occupies a small part of
it (the sandbox's shape, next to colour, scene and style) is learned slowly that way, and the
class term puts the task's own decision directly into the loss.

The teacher sees the very tensors the student sees, so both must share the embedding size and the
input preprocessing (size, mean, std); a mismatch stops before training.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from starft.errors import StarftError
from starft.method_configs import FeatureDistillConfig
from starft.methods.base import StepInfo, Task
from starft.methods.flyp import FLYP
from starft.methods.teacher import FrozenTeacher
from starft.models import ClipModel, build_zeroshot_head, create_model


def check_teacher_compatible(student: ClipModel, teacher: ClipModel, name: str) -> None:
    """Stop unless ``teacher`` can take ``student``'s input batches and share its feature space."""
    if teacher.embed_dim != student.embed_dim:
        raise StarftError(
            f"method.teacher '{name}': embedding size {teacher.embed_dim} != the trained model's "
            f"{student.embed_dim}"
        )
    for key in ("size", "mean", "std"):
        ours, theirs = student.preprocess_cfg.get(key), teacher.preprocess_cfg.get(key)
        if _as_tuple(ours) != _as_tuple(theirs):
            raise StarftError(
                f"method.teacher '{name}': preprocessing {key} {theirs} != the trained model's "
                f"{ours} (the teacher sees the same input tensors)"
            )


def _as_tuple(value: Any) -> Any:
    if isinstance(value, (int, float)):  # a square size given as one number
        return (float(value), float(value)) if not isinstance(value, bool) else value
    if isinstance(value, (list, tuple)):
        return tuple(float(v) for v in value)
    return value


class FeatureDistill(FLYP):
    """Contrastive fine-tuning + cosine distillation of the image features."""

    Config = FeatureDistillConfig

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: FeatureDistillConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        source = model
        if config.teacher:
            source = create_model(config.teacher)
            check_teacher_compatible(model, source, config.teacher)
        self.teacher = FrozenTeacher(source, cache_text=False)
        if config.class_distill_weight > 0:
            # Both text towers are frozen, so both class heads are constants: built once here.
            templates = task.eval_templates
            self.register_buffer(
                "student_head",
                build_zeroshot_head(model, task.classnames, templates),
                persistent=False,
            )
            self.register_buffer(
                "teacher_head",
                build_zeroshot_head(self.teacher.model, task.classnames, templates),
                persistent=False,
            )

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        images = batch["image"]
        image_features, (text_features,) = self.encode(images, [self.class_captions(batch, step)])
        terms = self.clip_loss(image_features, text_features, self.model.scale())
        teacher = self.teacher.image_features(images, batch.get("index"))
        distill = (1 - (image_features.float() * teacher.float()).sum(-1)).mean()
        loss = terms["contrastive"] + self.config.distill_weight * distill
        out = {**terms, "distill": distill}
        if self.config.class_distill_weight > 0:
            class_kl = self.class_distillation(image_features, teacher)
            loss = loss + self.config.class_distill_weight * class_kl
            out["class_distill"] = class_kl
        return {**out, "loss": loss}

    def class_distillation(self, image_features: Tensor, teacher_features: Tensor) -> Tensor:
        """Mean over the batch of ``KL(p_teacher || p_student)`` over the task's classes."""
        student_logits = self.model.scale() * image_features.float() @ self.student_head.T
        teacher_logits = self.teacher.scale * teacher_features.float() @ self.teacher_head.T
        return F.kl_div(
            F.log_softmax(student_logits, dim=-1),
            F.log_softmax(teacher_logits, dim=-1),
            log_target=True,
            reduction="batchmean",
        )
