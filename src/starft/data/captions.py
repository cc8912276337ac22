"""Class captions from templates: ``"a photo of a {}."`` + ``"tench"`` -> ``"a photo of a tench."``.

FLYP draws one template per sample at random (``mode="random"``); StarFT uses one fixed
template (``mode="fixed"``). Randomness comes only from the ``randint`` callable passed to
:meth:`CaptionSampler.sample` (the training loop passes :meth:`starft.methods.StepInfo.randint`,
seeded per step and consistent across DDP ranks), so a seeded run draws the same captions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from starft.data.templates import TemplateSpec, get_templates
from starft.errors import StarftError

CAPTION_MODES = ("random", "fixed")


def class_caption(template: str, classname: str) -> str:
    """Fill a template's ``{}`` with a class name."""
    return template.format(classname)


class CaptionSampler:
    """Turns batch labels into captions through a dataset's templates."""

    def __init__(
        self,
        classnames: Sequence[str],
        templates: TemplateSpec,
        mode: str = "random",
        template_index: int = 0,
    ) -> None:
        if mode not in CAPTION_MODES:
            raise StarftError(f"caption mode '{mode}' is not one of: {', '.join(CAPTION_MODES)}")
        if not classnames:
            raise StarftError("caption sampler: the class name list is empty")
        self.classnames = list(classnames)
        self.templates = get_templates(templates)
        if not -len(self.templates) <= template_index < len(self.templates):
            raise StarftError(
                f"caption template_index {template_index} is out of range for "
                f"{len(self.templates)} template(s)"
            )
        self.mode = mode
        self.template_index = template_index

    def _classname(self, label: int) -> str:
        if not 0 <= label < len(self.classnames):
            raise StarftError(f"label {label} is out of range for {len(self.classnames)} classes")
        return self.classnames[label]

    def sample(
        self,
        labels: Sequence[int] | torch.Tensor,
        randint: Callable[[int, int], list[int]] | torch.Generator,
    ) -> list[str]:
        """One caption per label; in random mode each template index is drawn uniformly.

        ``randint(high, n)`` returns ``n`` integers in ``[0, high)``; a ``torch.Generator`` is
        accepted as a shortcut for drawing from it directly.
        """
        labels = [int(label) for label in labels]
        if self.mode == "fixed":
            picks = [self.template_index] * len(labels)
        elif isinstance(randint, torch.Generator):
            picks = torch.randint(len(self.templates), (len(labels),), generator=randint).tolist()
        else:
            picks = randint(len(self.templates), len(labels))
        return [
            class_caption(self.templates[pick], self._classname(label))
            for pick, label in zip(picks, labels)
        ]

    def all_captions(self, label: int) -> list[str]:
        """The class's caption under every template (what a zero-shot head averages over)."""
        classname = self._classname(int(label))
        return [class_caption(template, classname) for template in self.templates]
