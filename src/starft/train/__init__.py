"""Training: the loop (:func:`fit`), optimisation, checkpoints and distributed set-up."""

from starft.train.loop import FitResult, Trainer, fit

__all__ = ["FitResult", "Trainer", "fit"]
