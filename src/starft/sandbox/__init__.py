"""The sandbox: a procedural world of shapes, colours, scenes and styles for CPU experiments.

Real CLIP weights and ImageNet are unavailable and CPUs are slow, so the project pretrains a tiny
CLIP on this world and fine-tunes it on a narrow, biased task (shape classification where the
scene is correlated with the class) to watch robustness drop and recover, as in the StarFT paper.
:mod:`~starft.sandbox.world` draws attribute tables and renders images,
:mod:`~starft.sandbox.captions` writes pretraining captions, :mod:`~starft.sandbox.datasets`
wraps both as a dataset and :mod:`~starft.sandbox.tasks` defines the registered tasks
(``sandbox_*`` in ``starft.data.DATASETS``; the superclass task in
:mod:`~starft.sandbox.superclass`, RaVL-style marker tasks in :mod:`~starft.sandbox.marker_tasks`).
:mod:`~starft.sandbox.layers` replays exact object, scene and part masks,
:mod:`~starft.sandbox.markers` and :mod:`~starft.sandbox.contingency` draw markers at a set
Cramér's V, and :mod:`~starft.sandbox.fields` names the region fields a sample may carry.
"""

from starft.sandbox.captions import caption
from starft.sandbox.datasets import SandboxDataset, default_templates
from starft.sandbox.tasks import (
    TASKS,
    home_scenes,
    minority_groups,
    sandbox_groups,
    sandbox_id_test,
    sandbox_pretrain,
    sandbox_style,
    sandbox_train,
    sandbox_transfer,
    sandbox_val,
    sandbox_zeroshot,
)
from starft.sandbox.world import (
    ATTRIBUTES,
    AttributeTable,
    render,
    render_table,
    sample_attributes,
    vocabulary,
)

__all__ = [
    "ATTRIBUTES",
    "TASKS",
    "AttributeTable",
    "SandboxDataset",
    "caption",
    "default_templates",
    "home_scenes",
    "minority_groups",
    "render",
    "render_table",
    "sample_attributes",
    "sandbox_groups",
    "sandbox_id_test",
    "sandbox_pretrain",
    "sandbox_style",
    "sandbox_train",
    "sandbox_transfer",
    "sandbox_val",
    "sandbox_zeroshot",
    "vocabulary",
]
