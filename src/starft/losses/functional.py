"""Pure tensor loss functions: drop them into any training loop.

Conventions: features are L2-normalised; ``logit_scale`` is the *multiplier* s (already
exponentiated), as in open_clip's ``ClipLoss``. Each public function has a ``*_local`` sibling that
computes the loss for the local rows of a batch whose columns span the global (all-rank) batch:
with one process the two are identical, and under DDP the mean over ranks of the local losses is the
loss over the global batch (see :mod:`starft.losses.distributed`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def clip_contrastive_loss(
    image_features: Tensor, text_features: Tensor, logit_scale: Tensor | float
) -> Tensor:
    """Symmetric CLIP loss ``½[CE(s·X Yᵀ, I) + CE(s·Y Xᵀ, I)]``.

    As in FLYP, same-class pairs of the batch are ordinary negatives.
    """
    return clip_contrastive_loss_local(
        image_features, text_features, image_features, text_features, logit_scale, offset=0
    )


def clip_contrastive_loss_local(
    image_features: Tensor,
    text_features: Tensor,
    all_image_features: Tensor,
    all_text_features: Tensor,
    logit_scale: Tensor | float,
    offset: int,
) -> Tensor:
    """Contrastive loss of the local rows against the global batch.

    ``offset`` is the position of the first local sample in the global batch (rank x local size).
    """
    logits_per_image = logit_scale * image_features @ all_text_features.t()
    logits_per_text = logit_scale * text_features @ all_image_features.t()
    targets = torch.arange(image_features.shape[0], device=image_features.device) + offset
    return 0.5 * (
        F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_text, targets)
    )


def star_regularization(
    image_features: Tensor,
    spurious_text_features: Tensor,
    teacher_image_features: Tensor,
    teacher_spurious_text_features: Tensor,
    labels: Tensor,
    logit_scale: Tensor | float,
    mask_same_class: bool = True,
) -> Tensor:
    """StarFT's spurious textual alignment regulariser (Eq. 1-2 of the paper, as released).

    ``z = s0·X Wᵀ`` (student image vs. student spurious captions) and ``z0 = s0·X0 W0ᵀ`` (the frozen
    zero-shot model), both at the *teacher's* scale ``logit_scale = s0``. With ``mask_same_class``
    every pair of the same class (the diagonal included) is removed from both softmaxes. The loss is
    ``(1/N) Σ_i KL(softmax(z0_i) ‖ softmax(z_i))`` with the teacher as the target.
    """
    return star_regularization_local(
        image_features,
        spurious_text_features,
        teacher_image_features,
        teacher_spurious_text_features,
        labels,
        labels,
        logit_scale,
        mask_same_class=mask_same_class,
    )


def star_regularization_local(
    image_features: Tensor,
    all_spurious_text_features: Tensor,
    teacher_image_features: Tensor,
    all_teacher_spurious_text_features: Tensor,
    labels: Tensor,
    all_labels: Tensor,
    logit_scale: Tensor | float,
    mask_same_class: bool = True,
) -> Tensor:
    """Star loss of the local rows against the spurious captions of the global batch.

    Computed in float32 whatever the autocast dtype. Masked entries get the dtype's most negative
    finite value rather than ``-inf``: the teacher's probability there is exactly 0, so the KL term
    ``0·(log 0 − z)`` is 0 instead of ``0·∞ = NaN``. A row whose every column is masked (all samples
    share its class) has no negatives; its KL is defined as 0, so the loss stays finite — the mean
    is still over all N rows, as in the release (``batchmean``).
    """
    z = logit_scale * image_features.float() @ all_spurious_text_features.float().t()
    z0 = (
        logit_scale
        * teacher_image_features.float()
        @ all_teacher_spurious_text_features.float().t()
    )
    if mask_same_class:
        mask = labels.view(-1, 1) == all_labels.view(1, -1)
        fill = torch.finfo(z.dtype).min
        z = z.masked_fill(mask, fill)
        z0 = z0.masked_fill(mask, fill)
        has_negative = ~mask.all(dim=1)
    else:
        has_negative = torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
    kl_rows = F.kl_div(
        F.log_softmax(z, dim=-1), F.softmax(z0, dim=-1), reduction="none", log_target=False
    ).sum(dim=-1)
    kl_rows = torch.where(has_negative, kl_rows, torch.zeros_like(kl_rows))
    return kl_rows.sum() / max(z.shape[0], 1)


# -- CAR-FT, CaRot, Lipsum-FT (docs/methods.md) ------------------------------------------------
def context_kl(
    image_features: Tensor,
    teacher_image_features: Tensor,
    context_weights: Tensor,
    logit_scale: Tensor | float,
) -> Tensor:
    """CAR-FT's context regulariser ``(1/N) Σ_i KL(p_ctx,0(x_i) ‖ p_ctx(x_i))``.

    ``p_ctx(x) = softmax(s·f(x) W_ctxᵀ)`` over the K context embeddings ``context_weights``
    (``[K, D]``); the frozen zero-shot model's distribution is the target. float32 throughout.
    """
    w = context_weights.float()
    log_p = F.log_softmax(logit_scale * image_features.float() @ w.t(), dim=-1)
    log_q = F.log_softmax(logit_scale * teacher_image_features.float() @ w.t(), dim=-1)
    return F.kl_div(log_p, log_q, reduction="batchmean", log_target=True)


def orthogonality_penalty(weight: Tensor) -> Tensor:
    """CaRot's ``‖WᵀW − I‖_F`` (Frobenius norm, not squared) for ``W`` of shape ``[in, out]``.

    Zero when the ``out`` columns are orthonormal. Computed in float32.
    """
    w = weight.float()
    gram = w.t() @ w
    eye = torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype)
    return torch.linalg.matrix_norm(gram - eye, ord="fro")


def cross_projection_penalty(visual_weight: Tensor, text_weight: Tensor) -> Tensor:
    """``‖W_v W_tᵀ‖_F`` for projections ``[in_v, D]`` and ``[in_t, D]`` (CaRot release's
    ``--cross_fnorm`` term; off by default)."""
    return torch.linalg.matrix_norm(visual_weight.float() @ text_weight.float().t(), ord="fro")


def soft_cross_entropy(logits: Tensor, target_logits: Tensor) -> Tensor:
    """``(1/N) Σ_i −Σ_j softmax(target)_ij · log_softmax(logits)_ij`` (targets get no gradient)."""
    target = F.softmax(target_logits.detach().float(), dim=-1)
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


def self_distillation_loss(
    image_features: Tensor,
    text_features: Tensor,
    teacher_image_features: Tensor,
    teacher_text_features: Tensor,
    logit_scale: Tensor | float,
    teacher_logit_scale: Tensor | float,
) -> Tensor:
    """CaRot's self-distillation: soft-CE of the student's image->text and text->image logits
    against the (EMA) teacher's, **summed** over the two directions as released.

    Student logits use the student's scale ``s``, the teacher's its own ``s_T``.
    """
    return self_distillation_loss_local(
        image_features,
        text_features,
        image_features,
        text_features,
        teacher_image_features,
        teacher_text_features,
        teacher_image_features,
        teacher_text_features,
        logit_scale,
        teacher_logit_scale,
    )


def self_distillation_loss_local(
    image_features: Tensor,
    text_features: Tensor,
    all_image_features: Tensor,
    all_text_features: Tensor,
    teacher_image_features: Tensor,
    teacher_text_features: Tensor,
    all_teacher_image_features: Tensor,
    all_teacher_text_features: Tensor,
    logit_scale: Tensor | float,
    teacher_logit_scale: Tensor | float,
) -> Tensor:
    """Self-distillation of the local rows against the global batch's columns."""
    student_i2t = logit_scale * image_features.float() @ all_text_features.float().t()
    student_t2i = logit_scale * text_features.float() @ all_image_features.float().t()
    teacher_i2t = (
        teacher_logit_scale * teacher_image_features.float() @ all_teacher_text_features.float().t()
    )
    teacher_t2i = (
        teacher_logit_scale * teacher_text_features.float() @ all_teacher_image_features.float().t()
    )
    return soft_cross_entropy(student_i2t, teacher_i2t) + soft_cross_entropy(
        student_t2i, teacher_t2i
    )


def lipsum_energy_loss(
    image_features: Tensor,
    teacher_image_features: Tensor,
    text_features: Tensor,
    logit_scale: Tensor | float,
) -> Tensor:
    """Lipsum-FT's energy gap ``(1/N) Σ_i (1/2K) ‖s·x_i Tᵀ − s·x0_i Tᵀ‖²``.

    ``text_features`` (``[K, D]``) are the frozen text tower's embeddings of K random texts,
    ``x``/``x0`` the fine-tuned/zero-shot image features, ``s`` the zero-shot scale. float32.
    """
    texts = text_features.float()
    gap = logit_scale * (image_features.float() - teacher_image_features.float()) @ texts.t()
    return gap.square().sum(dim=-1).mean() / (2 * texts.shape[0])


def region_text_losses(
    region_features: Tensor,
    text_features: Tensor,
    labels: Tensor,
    spurious: Tensor,
    valid: Tensor | None = None,
    temperature: float = 0.07,
    reduction: str = "mean",
) -> tuple[Tensor, Tensor]:
    """RaVL's region-aware terms ``(L_R, L_A)`` (region→text and text→region) for one batch.

    ``region_features`` ``[B, M, D]`` are the normalised embeddings of each image's M regions
    (``valid`` ``[B, M]`` marks real ones, padding is False), ``spurious`` ``[B, M]`` the regions
    assigned to a discovered spurious cluster, ``text_features`` ``[B, D]`` the normalised class
    text embedding ``g(t_{y_j})`` of each sample and ``labels`` ``[B]`` the classes. With
    ``e(r, j) = exp(cos(f(r), g(t_{y_j})) / τ)`` and ``σ(R, j) = max_{r∈R} e(r, j)``:

    * ``L_R = −Σ_i log σ(R_i^r, i) / (Σ_j σ(R_i^r, j) + Σ_{r∈R_B^s} max_j e(r, j))``
    * ``L_A = −Σ_i log σ(R_i^r, i) / (σ(R_i^r, i) + Σ_{j: y_j≠y_i} σ(R_j^r, i)
      + Σ_{r∈R_B^s} e(r, i))``

    ``R_i^r`` = the valid non-spurious regions of image i, ``R_B^s`` = every valid spurious region
    of the batch (only ever a negative), j runs over the batch's samples (a class present twice
    counts twice, as same-class captions in the CLIP loss). Images without a non-spurious region
    contribute no row; ``reduction="mean"`` averages over the rows that remain.
    """
    return region_text_losses_local(
        region_features,
        text_features,
        labels,
        spurious,
        valid,
        region_features,
        text_features,
        labels,
        spurious,
        valid,
        offset=0,
        temperature=temperature,
        reduction=reduction,
    )


def region_text_losses_local(
    region_features: Tensor,
    text_features: Tensor,
    labels: Tensor,
    spurious: Tensor,
    valid: Tensor | None,
    all_region_features: Tensor,
    all_text_features: Tensor,
    all_labels: Tensor,
    all_spurious: Tensor,
    all_valid: Tensor | None,
    offset: int,
    temperature: float = 0.07,
    reduction: str = "mean",
) -> tuple[Tensor, Tensor]:
    """:func:`region_text_losses` for the local rows against the global batch (``all_*``).

    Scaled so that the mean over ranks of the local losses equals the single-process loss of the
    global batch (the mean runs over the global count of rows with a non-spurious region).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if valid is None:
        valid = torch.ones(region_features.shape[:2], dtype=torch.bool, device=labels.device)
    if all_valid is None:
        all_valid = torch.ones(
            all_region_features.shape[:2], dtype=torch.bool, device=labels.device
        )
    neg_inf = float("-inf")
    keep = valid.bool() & ~spurious.bool()  # R_i^r of the local rows, [b, M]
    all_keep = all_valid.bool() & ~all_spurious.bool()  # [N, M]
    all_spur = all_valid.bool() & all_spurious.bool()  # R_B^s, [N, M]
    regions, all_regions = region_features.float(), all_region_features.float()
    texts, all_texts = text_features.float(), all_text_features.float()
    local, total = regions.shape[0], all_regions.shape[0]
    count = int(all_keep.any(dim=1).sum())  # rows of the global batch that have a loss
    # Rows without a non-spurious region are dropped *before* any logsumexp, so no row is all -inf
    # (its softmax gradient would be NaN even when multiplied by zero).
    rows = keep.any(dim=1).nonzero().squeeze(1)
    if count == 0 or rows.numel() == 0:
        zero = regions.sum() * 0.0 + all_regions.sum() * 0.0 + all_texts.sum() * 0.0
        return zero, zero

    # Kept local regions vs every text of the batch: log σ(R_i^r, j) = max_r cos / τ, [n, N].
    local_vs_all = torch.einsum("imd,jd->imj", regions[rows], all_texts) / temperature
    log_sigma = local_vs_all.masked_fill(~keep[rows][:, :, None], neg_inf).amax(dim=1)
    positive = log_sigma[torch.arange(len(rows), device=rows.device), rows + offset]

    # L_R negatives: every text of the batch, and each spurious region at its best text.
    spur_best = (all_regions[all_spur] @ all_texts.t() / temperature).amax(dim=-1)  # [S]
    r_terms = torch.cat([log_sigma, spur_best[None, :].expand(len(rows), -1)], dim=1)
    loss_r = (torch.logsumexp(r_terms, dim=1) - positive).sum()

    # L_A: the positive, other-class images' non-spurious regions, every spurious region.
    all_vs_local = torch.einsum("jmd,id->jmi", all_regions, texts[rows]) / temperature  # [N, M, n]
    other = all_vs_local.masked_fill(~all_keep[:, :, None], neg_inf).amax(dim=1).t()  # [n, N]
    other = other.masked_fill(all_labels[None, :] == labels[rows][:, None], neg_inf)
    spur_text = all_vs_local[all_spur].t()  # [n, S]
    a_terms = torch.cat([positive[:, None], other, spur_text], dim=1)
    loss_a = (torch.logsumexp(a_terms, dim=1) - positive).sum()

    factor = total / local  # the mean over ranks of the local losses is the global loss
    if reduction == "mean":
        factor = factor / count
    return loss_r * factor, loss_a * factor


def confidence_cross_entropy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``CE(z/T, argmax z)``: cross-entropy against the model's own prediction (RobustViT, CFT).

    Keeps the fine-tuned model confident in what it predicts while its relevance moves; the
    target is the argmax of the undivided logits, taken without gradient.
    """
    target = logits.detach().argmax(dim=1)
    return F.cross_entropy(logits / temperature, target)


def relevance_mse_terms(relevance: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """RobustViT's terms: ``(MSE(R⊙(1−M), 0), MSE(R⊙M, M))``, mean over every pixel."""
    background = F.mse_loss(relevance * (1 - mask), torch.zeros_like(relevance))
    foreground = F.mse_loss(relevance * mask, mask)
    return background, foreground


def _clamped_log(x: Tensor) -> Tensor:
    """``max(log x, −100)`` with the derivative of that clamped function (0 where x = 0)."""
    positive = x > 0
    safe = torch.where(positive, x, torch.ones_like(x))
    return torch.where(positive, safe.log().clamp(min=-100.0), torch.full_like(x, -100.0))


def binary_cross_entropy_clamped(inputs: Tensor, targets: Tensor) -> Tensor:
    """Mean ``−[y·log x + (1−y)·log(1−x)]`` with each log clamped at −100: the values of
    ``F.binary_cross_entropy``, differentiable where it is not.

    At ``x`` exactly 0 or 1 torch's backward divides by ``max(x(1−x), 1e-12)`` and returns
    ±1e12 per pixel although the clamped loss is flat there; min-maxed relevance maps always have
    such pixels, and those huge, mostly cancelling terms drown the gradient in rounding noise. This
    returns the derivative of the clamped loss (0 at those pixels) and the same values.
    """
    inputs, targets = inputs.float(), targets.float()
    losses = -(targets * _clamped_log(inputs) + (1 - targets) * _clamped_log(1 - inputs))
    return losses.mean()


def relevance_bce_terms(relevance: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """CFT's terms: ``(BCE(R⊙(1−M), 0), BCE(R⊙M, M))``, mean over every pixel.

    ``relevance`` and ``mask`` lie in [0, 1]; computed in float32 with
    :func:`binary_cross_entropy_clamped` (the values of torch's BCE, a usable gradient).
    """
    context = binary_cross_entropy_clamped(relevance * (1 - mask), torch.zeros_like(relevance))
    concept = binary_cross_entropy_clamped(relevance * mask, mask)
    return context, concept


def robustvit_loss(
    relevance: Tensor,
    mask: Tensor,
    logits: Tensor,
    lambda_background: float = 2.0,
    lambda_foreground: float = 0.3,
    lambda_align: float = 0.8,
    lambda_acc: float = 0.2,
    temperature: float = 1.0,
) -> Tensor:
    """``0.8·[2·MSE(R⊙(1−M), 0) + 0.3·MSE(R⊙M, M)] + 0.2·CE(z/T, argmax z)`` (as released)."""
    background, foreground = relevance_mse_terms(relevance, mask)
    alignment = lambda_background * background + lambda_foreground * foreground
    return lambda_align * alignment + lambda_acc * confidence_cross_entropy(logits, temperature)


def cft_loss(
    relevance: Tensor,
    mask: Tensor,
    logits: Tensor,
    lambda_context: float = 1.2,
    lambda_concept: float = 0.5,
    lambda_align: float = 0.8,
    lambda_acc: float = 0.2,
    temperature: float = 1.0,
) -> Tensor:
    """``0.8·[1.2·BCE(R⊙(1−M), 0) + 0.5·BCE(R⊙M, M)] + 0.2·CE(z/T, argmax z)`` (as released)."""
    context, concept = relevance_bce_terms(relevance, mask)
    alignment = lambda_context * context + lambda_concept * concept
    return lambda_align * alignment + lambda_acc * confidence_cross_entropy(logits, temperature)
