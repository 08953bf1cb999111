"""Contrastive losses on one device, with in-batch negatives.

Every loss returns per-example values and reduces through
:func:`jaxloss.reduce`. A ``[batch]`` ``where`` removes an example both as an
anchor and as a candidate (a column of the similarity matrix), so masking an
example is the same as slicing it out of the batch.

:func:`infonce_loss`, :func:`clip_loss`, :func:`siglip_loss` and
:func:`supervised_contrastive_loss` build the ``batch × batch`` similarity
matrix only while it is small. With a ``chunk_size`` (by default ``"auto"``:
dense while the matrix and what autodiff keeps of it fit 16 MiB, else the
chunk that keeps each block within that budget; ``jaxloss._core.chunking``)
they scan over ``chunk_size`` columns at a time with an online log-sum-exp and
a custom VJP that recomputes each chunk in the backward pass
(``jaxloss._core.online_softmax``). Values and gradients are those of the
dense path; temporary memory is O(batch × chunk_size). The chunked path
supports reverse-mode differentiation only (pass ``chunk_size=None`` for
forward mode); under ``vmap`` the budget holds for each mapped call.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import (
  checks,
  in_batch,
  numerics,
  value_checks,
)
from jaxloss._core.chunking import ChunkSize
from jaxloss._core.in_batch import Similarity
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce


@loss(temperature=value_checks.positive)
def infonce_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike | None = None,
  *,
  temperature: ArrayLike = 0.07,
  similarity: Similarity = "cosine",
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""InfoNCE with in-batch negatives and optional explicit negatives.

  .. math::
    \ell_i = -\log \frac{e^{s(a_i, p_i)/\tau}}
      {\sum_j e^{s(a_i, p_j)/\tau} + \sum_k e^{s(a_i, n_k)/\tau}}

  The candidates of anchor ``i`` are every positive of the batch (its own
  included) plus the explicit negatives: its own ``n_{i,k}`` when
  ``negatives`` is ``[batch, k, dim]``, or all ``m`` shared ones when it is
  ``[m, dim]``.

  Supported input range: With ``similarity="dot"`` the dot products are computed
  in the inputs' dtype, so in float32 inputs are supported up to magnitude 1e15
  (the checked range; products overflow from about 1.8e19).

  Args:
    anchors: ``[batch, dim]`` floating anchor embeddings.
    positives: ``[batch, dim]`` embeddings of each anchor's positive.
    negatives: optional ``[batch, k, dim]`` per-anchor or ``[m, dim]`` shared
      negatives.
    temperature: ``τ > 0``; may be a traced (learned) scalar.
    similarity: ``"cosine"`` (embeddings L2-normalised first; a zero vector
      has similarity 0 with everything) or ``"dot"``.
    chunk_size: ``"auto"`` (dense while small, else chunked within the
      16 MiB budget), ``None`` (dense) or the number of candidate columns per
      chunk of the memory-saving path.
    where: optional ``[batch]`` mask; a masked example is neither an anchor
      nor a candidate (shared negatives stay candidates).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``.

  Without ``negatives``, matches info-nce-pytorch's ``info_nce(query,
  positive_key)`` (cross-entropy of ``a pᵀ / τ`` with labels ``arange``).
  With them it differs from that package's ``negative_mode="paired"`` /
  ``"unpaired"``, which drop the in-batch candidates: here they stay (with
  shared negatives this is sentence-transformers'
  ``MultipleNegativesRankingLoss`` with ``scale = 1/τ``).

  >>> import jax.numpy as jnp, jaxloss.contrastive as jc
  >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jc.infonce_loss(a, a, temperature=1.0)
  Array([0.31326163, 0.31326163], dtype=float32)

  References:
    van den Oord, Li and Vinyals, `Representation Learning with Contrastive
    Predictive Coding <https://arxiv.org/abs/1807.03748>`_, 2018.
  """
  anchors, positives, negatives, temperature = in_batch.infonce_inputs(
    anchors, positives, negatives, temperature, similarity
  )
  keep = in_batch.example_mask(where, anchors.shape[:1])
  values = _infonce(
    anchors,
    positives,
    negatives,
    temperature,
    keep,
    similarity=similarity,
    chunk_size=checks.chunk_size(chunk_size),
  )
  return reduce(values, reduction, weights=weights, where=keep)


# The cores below are jitted: chunked, they hold a scan and a custom VJP,
# which would be traced again at every eager call.


@functools.partial(jax.jit, static_argnames=("similarity", "chunk_size"))
def _infonce(
  anchors, positives, negatives, temperature, keep, *, similarity, chunk_size
):
  return in_batch.infonce_values(
    anchors,
    positives,
    negatives,
    temperature,
    keep,
    similarity=similarity,
    stats=in_batch.local_stats(chunk_size),
  )


@loss(temperature=value_checks.positive)
def ntxent(
  embeddings: ArrayLike,
  labels: ArrayLike,
  temperature: ArrayLike = 0.07,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""Normalized temperature-scaled cross-entropy (NT-Xent), optax's form.

  .. math::
    \ell_{ij} = -\log \frac{e^{c_{ij}/\tau}}
      {e^{c_{ij}/\tau} + \sum_{k:\, y_k \ne y_i} e^{c_{ik}/\tau}}
    \quad \text{for each positive pair } y_j = y_i,\ j \ne i

  with ``c`` the cosine similarity. Each positive pair has its own
  denominator: the pair itself plus all of the anchor's negatives (the other
  positives are left out).

  Args:
    embeddings: ``[batch, dim]`` floating embeddings.
    labels: ``[batch]`` integer labels; equal labels make positive pairs.
    temperature: ``τ > 0``; may be a traced (learned) scalar.
    where: optional ``[batch]`` mask; a masked example is neither an anchor
      nor a candidate.
    weights: optional per-anchor weights, broadcastable to ``[batch]``.
    reduction: see :func:`jaxloss.reduce`; the default ``"mean"`` is the
      mean over positive pairs, optax's value (each anchor weighs as many
      pairs as it has positives; an anchor without positives weighs 0).

  Returns:
    A scalar (``"mean"``, ``"sum"``), or ``[batch]``: each anchor's sum over
    its positive pairs (``"none"``).

  Matches ``optax.losses.ntxent`` (and pytorch-metric-learning's
  ``NTXentLoss``); where no pair is positive, optax returns NaN and this
  returns 0.

  >>> import jax.numpy as jnp, jaxloss.contrastive as jc
  >>> x = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
  >>> jc.ntxent(x, jnp.array([0, 0, 1, 1]), 1.0)
  Array(0.5978082, dtype=float32)

  References:
    Chen, Kornblith, Norouzi and Hinton, `A Simple Framework for Contrastive
    Learning of Visual Representations <https://arxiv.org/abs/2002.05709>`_,
    2020.
  """
  embeddings, labels, temperature = in_batch.ntxent_inputs(
    embeddings, labels, temperature
  )
  keep = in_batch.example_mask(where, labels.shape)
  # One dense logits matrix (in_batch.ntxent_values, which the sharded loss
  # uses, makes two passes: 1.3x the CPU time here at 2048 x 128).
  dtype = embeddings.dtype
  # optax's cosine similarity, x / sqrt(max(|x|², eps)).
  unit = numerics.l2_normalize(embeddings, eps=jnp.sqrt(jnp.finfo(dtype).eps))
  logits = jnp.matmul(unit, unit.T) / temperature.astype(dtype)
  pairs = keep[:, None] & keep[None, :]
  same = in_batch.same_label(labels)
  negative = pairs & ~same
  positive = pairs & same & ~jnp.eye(labels.shape[0], dtype=bool)
  # -log(e^s / (e^s + Σ_neg e^n)) = softplus(lse_neg - s); 0 without negatives.
  lse_negative = numerics.masked_logsumexp(logits, negative, axis=1)
  has_negative = jnp.any(negative, axis=1, keepdims=True)
  pair_loss = jnp.where(
    positive & has_negative, jax.nn.softplus(lse_negative[:, None] - logits), 0
  )
  count = jnp.sum(positive, axis=1, dtype=dtype)
  values = numerics.safe_divide(jnp.sum(pair_loss, axis=1), count)
  if weights is not None:
    count = count * checks.broadcast_weights(
      "weights", weights, values, same_rank=True
    )
  return reduce(values, reduction, weights=count, where=keep)


@loss(temperature=value_checks.positive)
def clip_loss(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  temperature: ArrayLike = 0.07,
  normalize: bool = True,
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""CLIP's symmetric contrastive loss over image-text pairs.

  .. math::
    L = \frac{\hat x \hat y^\top}{\tau}, \qquad
    \ell_i = \tfrac12 \Big(\big(\log\textstyle\sum_j e^{L_{ij}} - L_{ii}\big)
                   + \big(\log\textstyle\sum_j e^{L_{ji}} - L_{ii}\big)\Big)

  the average of pair ``i``'s image→text and text→image cross-entropies, so
  that ``"mean"`` is CLIP's loss.

  Supported input range: With ``normalize=False`` the dot products are computed
  in the inputs' dtype, so in float32 inputs are supported up to magnitude 1e15
  (the checked range; products overflow from about 1.8e19).

  Args:
    image_embeddings: ``[batch, dim]`` floating image embeddings ``x``.
    text_embeddings: ``[batch, dim]`` text embeddings ``y`` of the same pairs.
    temperature: ``τ > 0`` (open_clip's ``logit_scale`` is ``1/τ``); may be a
      traced (learned) scalar.
    normalize: L2-normalise the embeddings first (``x̂``, ``ŷ``); a zero
      vector stays zero.
    chunk_size: ``"auto"`` (dense while small, else chunked within the
      16 MiB budget), ``None`` (dense) or the number of text columns per
      chunk of the memory-saving path.
    where: optional ``[batch]`` mask; a masked pair takes no part in either
      direction.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-pair loss, or a scalar for ``"sum"``/``"mean"``.

  With ``"mean"``, matches ``open_clip.loss.ClipLoss`` on one device with
  ``logit_scale = 1 / temperature`` (open_clip normalises in the model).

  >>> import jax.numpy as jnp, jaxloss.contrastive as jc
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jc.clip_loss(x, x, temperature=0.5, reduction="mean")
  Array(0.12692809, dtype=float32)

  References:
    Radford et al., `Learning Transferable Visual Models From Natural
    Language Supervision <https://arxiv.org/abs/2103.00020>`_, 2021.
  """
  images, texts, temperature = in_batch.clip_inputs(
    image_embeddings, text_embeddings, temperature
  )
  keep = in_batch.example_mask(where, images.shape[:1])
  values = _clip(
    images,
    texts,
    temperature,
    keep,
    normalize=bool(normalize),
    chunk_size=checks.chunk_size(chunk_size),
  )
  return reduce(values, reduction, weights=weights, where=keep)


@functools.partial(jax.jit, static_argnames=("normalize", "chunk_size"))
def _clip(images, texts, temperature, keep, *, normalize, chunk_size):
  return in_batch.clip_values(
    images,
    texts,
    temperature,
    keep,
    normalize=normalize,
    stats=in_batch.local_stats(chunk_size),
  )


@loss(logit_scale=value_checks.positive)
def siglip_loss(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  logit_scale: ArrayLike = 10.0,
  logit_bias: ArrayLike = -10.0,
  normalize: bool = True,
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""SigLIP's pairwise sigmoid loss, summed over each image's texts.

  .. math::
    \ell_i = -\sum_j \log \sigma\big(z_{ij}
             (t\, \hat x_i \cdot \hat y_j + b)\big),
    \qquad z_{ij} = \begin{cases} +1 & i = j \\ -1 & i \ne j \end{cases}

  Supported input range: With ``normalize=False`` the dot products are computed
  in the inputs' dtype, so in float32 inputs are supported up to magnitude 1e15
  (the checked range; products overflow from about 1.8e19).

  Args:
    image_embeddings: ``[batch, dim]`` floating image embeddings ``x``.
    text_embeddings: ``[batch, dim]`` text embeddings ``y`` of the same pairs.
    logit_scale: the scale ``t`` itself (not its log); big_vision learns
      ``t'`` with ``t = exp(t')``: pass ``jnp.exp(t_prime)``. The default 10
      and ``logit_bias`` −10 are SigLIP's initialisation (``t' = log 10``).
      May be a traced (learned) scalar.
    logit_bias: the bias ``b``; may be traced.
    normalize: L2-normalise the embeddings first; a zero vector stays zero.
    chunk_size: ``"auto"`` (dense while small, else chunked within the
      16 MiB budget), ``None`` (dense) or the number of text columns per
      chunk of the memory-saving path.
    where: optional ``[batch]`` mask; a masked pair is neither a row nor a
      column.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-image loss (its row of the pair matrix, summed), or a
    scalar; ``"mean"`` divides by the batch, as big_vision does.

  With ``"mean"``, matches big_vision's ``sigmoid`` loss
  (``big_vision/trainers/proj/image_text/siglip.py``) on one device.

  >>> import jax.numpy as jnp, jaxloss.contrastive as jc
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jc.siglip_loss(x, x)
  Array([0.6931926, 0.6931926], dtype=float32)

  References:
    Zhai, Mustafa, Kolesnikov and Beyer, `Sigmoid Loss for Language Image
    Pre-Training <https://arxiv.org/abs/2303.15343>`_, 2023.
  """
  images, texts, scale, bias = in_batch.siglip_inputs(
    image_embeddings, text_embeddings, logit_scale, logit_bias
  )
  keep = in_batch.example_mask(where, images.shape[:1])
  values = _siglip(
    images,
    texts,
    scale,
    bias,
    keep,
    normalize=bool(normalize),
    chunk_size=checks.chunk_size(chunk_size),
  )
  return reduce(values, reduction, weights=weights, where=keep)


@functools.partial(jax.jit, static_argnames=("normalize", "chunk_size"))
def _siglip(images, texts, scale, bias, keep, *, normalize, chunk_size):
  return in_batch.siglip_values(
    images,
    texts,
    scale,
    bias,
    keep,
    normalize=normalize,
    stats=in_batch.local_stats(chunk_size),
  )


@loss(temperature=value_checks.positive, base_temperature=value_checks.positive)
def supervised_contrastive_loss(
  embeddings: ArrayLike,
  labels: ArrayLike | None,
  *,
  temperature: ArrayLike = 0.07,
  base_temperature: ArrayLike = 0.07,
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Supervised contrastive (SupCon) loss, every view an anchor.

  .. math::
    \ell_a = -\frac{\tau}{\tau_b} \frac{1}{|P(a)|} \sum_{p \in P(a)}
      \log \frac{e^{z_a \cdot z_p / \tau}}
                {\sum_{c \ne a} e^{z_a \cdot z_c / \tau}}

  over all views ``a`` of the batch, where ``P(a)`` are the other views with
  ``a``'s label. An anchor without positives has value 0 and is left out of
  ``"mean"``.

  Supported input range: The embeddings are used as given, so their dot products
  are computed in the inputs' dtype, so in float32 inputs are supported up to
  magnitude 1e15 (the checked range; products overflow from about 1.8e19).

  Args:
    embeddings: ``[batch, dim]`` or multi-view ``[batch, views, dim]``
      floating embeddings, used as given (the reference normalises them in
      the model).
    labels: ``[batch]`` integer labels, or ``None``: each example its own
      class, so the positives are its other views (SimCLR).
    temperature: ``τ > 0``; may be a traced (learned) scalar.
    base_temperature: ``τ_b > 0``.
    chunk_size: ``"auto"`` (dense while small, else chunked within the
      16 MiB budget), ``None`` (dense) or the number of candidate views per
      chunk of the memory-saving path.
    where: optional mask broadcastable to the per-example shape; a masked
      view is neither an anchor nor a candidate (``[batch, 1]`` masks whole
      examples of a multi-view batch).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` or ``[batch, views]`` per-anchor loss, or a scalar for
    ``"sum"``/``"mean"``.

  With ``"mean"``, matches Khosla et al.'s ``SupConLoss`` with
  ``contrast_mode="all"`` when every anchor has a positive (the reference
  averages anchors without positives in as 0).

  >>> import jax.numpy as jnp, jaxloss.contrastive as jc
  >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  >>> jc.supervised_contrastive_loss(x, jnp.array([0, 0, 1]), temperature=1.0,
  ...                                base_temperature=1.0)
  Array([0.31326163, 0.31326163, 0.        ], dtype=float32)

  References:
    Khosla et al., `Supervised Contrastive Learning
    <https://arxiv.org/abs/2004.11362>`_, 2020; reference code
    https://github.com/HobbitLong/SupContrast (``losses.py``).
  """
  embeddings, labels, temperature, base_temperature = (
    in_batch.supervised_inputs(
      embeddings, labels, temperature, base_temperature
    )
  )
  keep = in_batch.example_mask(where, embeddings.shape[:-1])
  values, keep = _supervised(
    embeddings,
    labels,
    temperature,
    base_temperature,
    keep,
    chunk_size=checks.chunk_size(chunk_size),
  )
  return reduce(values, reduction, weights=weights, where=keep)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _supervised(
  embeddings, labels, temperature, base_temperature, keep, *, chunk_size
):
  return in_batch.supervised_values(
    embeddings,
    labels,
    temperature,
    base_temperature,
    keep,
    stats=in_batch.local_stats(chunk_size),
  )


__all__ = [
  "clip_loss",
  "infonce_loss",
  "ntxent",
  "siglip_loss",
  "supervised_contrastive_loss",
]
