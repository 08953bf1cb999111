"""Losses on pairs of embeddings: contrastive (siamese), N-pair, and Wang
and Isola's alignment and uniformity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, in_batch, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, split_where
from jaxloss.metric_learning._cross_entropy import masked_cross_entropy
from jaxloss.metric_learning._distances import (
  VECTORS,
  pairwise_distances,
  squared_distance,
)


@loss(labels=value_checks.unit_interval)
def contrastive_loss(
  embeddings1: ArrayLike,
  embeddings2: ArrayLike,
  labels: ArrayLike,
  *,
  margin: ArrayLike = 1.0,
  squared: bool = True,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Contrastive (siamese) loss on pairs; label 1 means similar.

  .. math::
    \ell = y\, d^2 + (1 - y) \max(0, m - d)^2, \qquad d = \|x_1 - x_2\|_2

  or, with ``squared=False``, :math:`\ell = y\, d + (1 - y) \max(0, m - d)`.

  Hadsell et al.'s loss, :math:`(1 - Y) \tfrac12 D^2 + Y \tfrac12
  \max(0, m - D)^2` with their ``Y = 0`` for a similar pair, is
  ``0.5 * contrastive_loss(x1, x2, 1 - Y, margin=m)``.

  Supported input range: Squared distances are computed in the inputs' dtype, so
  in float32 inputs are supported up to magnitude 1e15 (the checked range;
  products overflow from about 1.8e19); with ``squared=False`` the distance
  does not overflow where it is representable.

  Args:
    embeddings1: ``[..., dim]`` floating embeddings.
    embeddings2: ``[..., dim]`` embeddings, same shape.
    labels: ``[...]`` similarity in [0, 1] (1 similar, 0 dissimilar; float,
      int or bool).
    margin: the margin ``m`` beyond which dissimilar pairs cost nothing.
    squared: square both terms (the default, Hadsell et al.'s form), or not
      (static).
    where: boolean mask of the embeddings' shape (drops features) or of the
      labels' shape (drops pairs).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-pair loss, or a scalar for ``"sum"``/``"mean"``.

  Matches Hadsell et al. with the label flipped (their ``Y = 0`` is similar)
  and without their factors ½. With ``squared=False``, matches
  pytorch-metric-learning's ``ContrastiveLoss(pos_margin=0, neg_margin=m)``
  per pair (with ``LpDistance(normalize_embeddings=False)``; PML forms all
  pairs of a batch from class labels and averages the non-zero pair losses).

  >>> import jax.numpy as jnp, jaxloss
  >>> x1 = jnp.array([[0.0, 0.0], [0.0, 0.0]])
  >>> x2 = jnp.array([[0.3, 0.4], [0.3, 0.4]])
  >>> jaxloss.contrastive_loss(x1, x2, jnp.array([1, 0]))
  Array([0.25, 0.25], dtype=float32)

  References:
    Hadsell, Chopra and LeCun, `Dimensionality Reduction by Learning an
    Invariant Mapping <https://doi.org/10.1109/CVPR.2006.100>`_, 2006.
  """
  embeddings1, embeddings2 = checks.same_shape_floats(
    embeddings1=embeddings1, embeddings2=embeddings2
  )
  checks.min_rank("embeddings1", embeddings1, 1, VECTORS)
  labels = checks.as_targets("labels", labels, embeddings1)
  checks.shape("labels", labels, embeddings1.shape[:-1], "one label per pair")
  checks.nonnegative("margin", margin)
  checks.option("squared", squared, (True, False))
  margin = numerics.like(margin, embeddings1.dtype)
  elements, examples = split_where(where, embeddings1.shape, -1)
  if squared:
    square = squared_distance(embeddings1, embeddings2, elements)
    dissimilar = jax.nn.relu(margin - numerics.safe_sqrt(square))
    values = labels * square + (1 - labels) * jnp.square(dissimilar)
  else:  # the distance itself: no square to overflow.
    difference = embeddings1 - embeddings2
    if elements is not None:
      difference = jnp.where(elements, difference, 0)
    distance = numerics.safe_norm(difference, axis=-1)
    values = labels * distance + (1 - labels) * jax.nn.relu(margin - distance)
  return reduce(values, reduction, weights=weights, where=examples)


@loss
def alignment_loss(
  x: ArrayLike,
  y: ArrayLike,
  *,
  alpha: ArrayLike = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Alignment of positive pairs: the ``α``-th power of their distance.

  .. math:: \ell = \|x - y\|_2^\alpha

  Supported input range: For ``alpha > 1`` the powers of the distances are
  computed in the inputs' dtype, so in float32 inputs are supported up to
  magnitude 1e15 (the checked range; products overflow from about 1.8e19).

  Args:
    x: ``[..., dim]`` floating embeddings (the paper normalises them).
    y: ``[..., dim]`` embeddings of the positives, same shape.
    alpha: the exponent ``α > 0``.
    where: boolean mask of the inputs' shape (drops features) or of the
      per-example shape (drops pairs).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``
      (the paper's loss is ``"mean"``).

  Returns:
    ``[...]`` per-pair loss, or a scalar for ``"sum"``/``"mean"``.

  With ``"mean"``, matches the paper's ``align_loss``:
  ``(x - y).norm(p=2, dim=1).pow(alpha).mean()``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.alignment_loss(jnp.array([[0.6, 0.8]]), jnp.array([[0.0, 1.0]]))
  Array([0.4], dtype=float32)

  References:
    Wang and Isola, `Understanding Contrastive Representation Learning through
    Alignment and Uniformity on the Hypersphere
    <https://arxiv.org/abs/2005.10242>`_, 2020.
  """
  x, y = checks.same_shape_floats(x=x, y=y)
  checks.min_rank("x", x, 1, VECTORS)
  checks.positive("alpha", alpha)
  elements, examples = split_where(where, x.shape, -1)
  difference = x - y if elements is None else jnp.where(elements, x - y, 0)
  norm = numerics.safe_norm(difference, axis=-1)  # no overflow: not ‖·‖².
  values = numerics.safe_pow(norm, numerics.like(alpha, x.dtype))
  return reduce(values, reduction, weights=weights, where=examples)


@loss
def npair_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  *,
  negatives: ArrayLike | None = None,
  in_batch_negatives: bool = True,
  l2_reg: ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multi-class N-pair loss: each anchor's positive against the others'.

  .. math::
    \ell_i = \log\Big(1 + \sum_{j \ne i} \exp(f_i^\top f^+_j
             - f_i^\top f^+_i)\Big) + \frac{\lambda}{4}
             \big(\|f_i\|^2 + \|f^+_i\|^2\big)

  the cross-entropy of ``softmax_j(f_i · f⁺_j)`` with label ``i``. The
  examples are assumed to come from distinct classes. Explicit
  ``negatives`` ``n_{i,k}`` add the terms ``exp(f_i^\top n_{i,k} − f_i^\top
  f^+_i)`` to anchor ``i``'s sum; with ``in_batch_negatives=False`` they are
  its only terms, the paper's (N+1)-tuplet loss.

  Supported input range: The dot products are computed in the inputs' dtype, so
  in float32 inputs are supported up to magnitude 1e15 (the checked range;
  products overflow from about 1.8e19).

  Args:
    anchors: ``[batch, dim]`` floating anchor embeddings ``f``.
    positives: ``[batch, dim]`` positive embeddings ``f⁺``; row ``i`` is the
      positive of anchor ``i`` and a negative of every other anchor.
    negatives: optional ``[batch, k, dim]`` explicit negatives, each
      anchor's own ``k`` (not regularised by ``l2_reg``).
    in_batch_negatives: whether the other anchors' positives are negatives
      (static); ``False`` needs ``negatives``.
    l2_reg: ``λ``, the weight of the embedding-norm regulariser the paper
      adds; off by default.
    where: optional ``[batch]`` mask; a masked pair is neither an anchor nor
      a negative of another anchor (``where`` equals slicing).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``.

  With ``"mean"`` this matches ``tf.contrib.losses.metric_learning.npairs_loss``
  (``reg_lambda = l2_reg``) on distinct labels. With ``negatives`` and
  ``in_batch_negatives=False`` it matches info-nce-pytorch's ``info_nce``
  with ``negative_mode="paired"``, ``temperature=1`` and unnormalised
  embeddings (that function normalises them), per anchor.

  >>> import jax.numpy as jnp, jaxloss
  >>> f = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jaxloss.npair_loss(f, f)
  Array([0.3132617, 0.3132617], dtype=float32)

  References:
    Sohn, `Improved Deep Metric Learning with Multi-class N-pair Loss
    Objective <https://papers.nips.cc/paper/6200>`_, 2016.
  """
  anchors, positives = checks.same_shape_floats(
    anchors=anchors, positives=positives
  )
  checks.rank("anchors", anchors, 2)
  checks.nonnegative("l2_reg", l2_reg)
  checks.option("in_batch_negatives", in_batch_negatives, (True, False))
  batch, dim = anchors.shape
  keep = in_batch.example_mask(where, (batch,))
  logits = jnp.matmul(anchors, positives.T)
  mask = jnp.broadcast_to(keep[None, :], logits.shape)
  if not in_batch_negatives:
    if negatives is None:
      raise checks.fail(
        "`in_batch_negatives=False` needs `negatives` (without any negative "
        "the loss is 0)."
      )
    mask = mask & jnp.eye(batch, dtype=bool)
  if negatives is not None:
    negatives = checks.floats(anchors=anchors, negatives=negatives)[1]
    checks.shape(
      "negatives", negatives, (batch, None, dim), "[batch, k, dim] per anchor"
    )
    own = jnp.einsum("bd,bkd->bk", anchors, negatives)
    logits = jnp.concatenate([logits, own], axis=1)
    mask = jnp.concatenate([mask, jnp.ones(own.shape, bool)], axis=1)
  labels = jnp.arange(batch)
  values = masked_cross_entropy(logits, labels, mask)
  if not (checks.is_static_number(l2_reg) and l2_reg == 0):
    norms = jnp.sum(jnp.square(anchors) + jnp.square(positives), axis=-1)
    values = values + numerics.like(l2_reg, anchors) / 4 * norms
  return reduce(values, reduction, weights=weights, where=keep)


@loss
def uniformity_loss(
  x: ArrayLike,
  *,
  t: ArrayLike = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Uniformity: the log of the mean Gaussian potential over pairs ``i ≠ j``.

  .. math::
    \mathcal{L} = \log \frac{\sum_{i \ne j} w_i w_j\, e^{-t \|x_i - x_j\|^2}}
                            {\sum_{i \ne j} w_i w_j}

  This is a batch-level value (the log of a mean over pairs does not split
  into per-example terms), so it is a scalar for every ``reduction``.

  Supported input range: Squared distances are computed in the inputs' dtype, so
  in float32 inputs are supported up to magnitude 1e15 (the checked range;
  products overflow from about 1.8e19).

  Args:
    x: ``[batch, dim]`` floating embeddings (the paper normalises them).
    t: the potential's scale ``t > 0``.
    where: optional ``[batch]`` mask; a masked example takes part in no pair
      (``where`` equals slicing).
    weights: optional ``[batch]`` example weights ``w``; a pair weighs
      ``w_i w_j`` (default 1).
    reduction: checked for the common signature; the value is already a
      scalar, the same for ``"none"``, ``"sum"`` and ``"mean"``.

  Returns:
    A scalar; 0 when fewer than two examples take part.

  Matches the paper's ``uniform_loss``:
  ``torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.uniformity_loss(jnp.array([[1.0, 0.0], [-1.0, 0.0]]))
  Array(-8., dtype=float32)

  References:
    Wang and Isola, `Understanding Contrastive Representation Learning through
    Alignment and Uniformity on the Hypersphere
    <https://arxiv.org/abs/2005.10242>`_, 2020.
  """
  x = checks.as_float("x", x)
  checks.rank("x", x, 2)
  checks.positive("t", t)
  n = x.shape[0]
  example_weights = in_batch.example_mask(where, (n,)).astype(x.dtype)
  if weights is not None:
    example_weights = example_weights * checks.broadcast_weights(
      "weights", weights, example_weights
    )
  pair_weights = jnp.where(
    jnp.eye(n, dtype=bool),
    0,
    example_weights[:, None] * example_weights[None, :],
  )
  total = jnp.sum(pair_weights)
  has_pairs = total > 0
  squared = pairwise_distances(x, "squared_euclidean")
  log_potential = jax.nn.logsumexp(
    -numerics.like(t, x) * squared, b=jnp.where(has_pairs, pair_weights, 1)
  )
  return jnp.where(
    has_pairs, log_potential - jnp.log(jnp.where(has_pairs, total, 1)), 0
  )


__all__ = [
  "alignment_loss",
  "contrastive_loss",
  "npair_loss",
  "uniformity_loss",
]
