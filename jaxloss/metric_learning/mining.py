"""Triplet losses that mine their triplets in the batch: batch-hard,
batch-all and semi-hard."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, in_batch, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.metric_learning._distances import (
  DISTANCES,
  Distance,
  pairwise_distances,
)
from jaxloss.metric_learning.memory import (
  CrossBatchMemory,
  cross_distances,
  references,
)


class _Batch(NamedTuple):
  distances: jax.Array  # [n, c]: c = n, or n + size with a memory
  positives: jax.Array  # [n, c] same label, not the anchor itself, both kept
  negatives: jax.Array  # [n, c] different label, both kept
  keep: jax.Array  # [n]
  margin: ArrayLike


def _mine(
  embeddings: ArrayLike,
  labels: ArrayLike,
  margin: ArrayLike,
  distance: str,
  where: ArrayLike | None,
  memory: CrossBatchMemory | None,
) -> _Batch:
  """Checks the inputs of a mining loss and builds its pair masks: the
  anchors are the batch, the candidates the batch and then the memory's
  written rows (distances of the batch to itself computed as without a
  memory)."""
  embeddings = checks.as_float("embeddings", embeddings)
  labels = checks.as_labels("labels", labels)
  checks.rank("embeddings", embeddings, 2)
  checks.shape(
    "labels", labels, embeddings.shape[:1], "one label per embedding"
  )
  checks.option("distance", distance, DISTANCES)
  checks.nonnegative("margin", margin)
  n = embeddings.shape[0]
  keep = in_batch.example_mask(where, (n,))
  distances = pairwise_distances(embeddings, distance)
  if memory is None:
    candidate_labels, valid, own = labels, keep, jnp.eye(n, dtype=bool)
  else:
    refs = references(embeddings, labels, keep, memory)
    distances = jnp.concatenate(
      [distances, cross_distances(embeddings, refs.memory, distance)], axis=1
    )
    candidate_labels, valid, own = refs.labels, refs.valid, refs.own
  both_kept = keep[:, None] & valid[None, :]
  same = in_batch.same_label(labels, candidate_labels)
  return _Batch(
    distances=distances,
    positives=same & both_kept & ~own,
    negatives=~same & both_kept,
    keep=keep,
    margin=numerics.like(margin, embeddings),
  )


def _has_triplet(batch: _Batch) -> jax.Array:
  """Kept anchors with at least one positive and one negative."""
  return (
    batch.keep
    & jnp.any(batch.positives, axis=-1)
    & jnp.any(batch.negatives, axis=-1)
  )


@loss
def batch_hard_triplet_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: ArrayLike = 1.0,
  distance: Distance = "euclidean",
  memory: CrossBatchMemory | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Batch-hard triplet loss: each anchor's hardest positive and negative.

  .. math::
    \ell_a = \Big[\, m + \max_{p:\, y_p = y_a,\, p \ne a} d(a, p)
                   - \min_{n:\, y_n \ne y_a} d(a, n) \Big]_+

  Supported input range: With ``distance="squared_euclidean"`` the squared
  distances are computed in the inputs' dtype, so in float32 inputs are
  supported up to magnitude 1e15 (the checked range; products overflow from
  about 1.8e19).

  Args:
    embeddings: ``[batch, dim]`` floating embeddings.
    labels: ``[batch]`` integer class labels.
    margin: the margin ``m`` (a float or a traced scalar).
    distance: ``"euclidean"``, ``"squared_euclidean"`` or ``"cosine"``
      (``1 − cos``; a zero vector has cosine 0 with everything).
    memory: optional cross-batch memory (:func:`jaxloss.cross_batch_memory`);
      its written rows are extra positives and negatives of every anchor
      (references only, never anchors; no gradient), with the batch's
      ``distance``.
    where: optional ``[batch]`` mask; a masked example takes no part, neither
      as an anchor nor as a positive or negative of another anchor, so
      ``where`` is the same as slicing the example out.
    weights: optional per-anchor weights, broadcastable to ``[batch]``.
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``. An
    anchor with no positive or no negative in the batch has value 0 and is
    left out of ``"mean"``.

  Matches ``tfa.losses.triplet_hard_loss`` (``"euclidean"`` is its ``"L2"``,
  ``"squared_euclidean"`` its ``"squared-L2"``, ``"cosine"`` its
  ``"angular"``) when every anchor has a positive and a negative.
  With a ``memory``, matches pytorch-metric-learning's
  ``CrossBatchMemory(TripletMarginLoss(margin), miner=BatchHardMiner())``
  per anchor (``LpDistance(normalize_embeddings=False)``, ``power=2`` for
  ``"squared_euclidean"``, ``CosineSimilarity()`` for ``"cosine"``) while
  the queue has not wrapped: PML enqueues the batch first and compares it
  with its detached copy, so its gradient flows through the anchors only;
  here the batch's own rows are live references (as without a memory).

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[0.0, 0.0], [0.0, 1.5], [1.0, 0.0], [1.0, 1.0]])
  >>> jaxloss.batch_hard_triplet_loss(x, jnp.array([0, 0, 1, 1]))
  Array([1.5     , 1.381966, 1.      , 0.881966], dtype=float32)

  References:
    Hermans, Beyer and Leibe, `In Defense of the Triplet Loss for Person
    Re-Identification <https://arxiv.org/abs/1703.07737>`_, 2017.
  """
  batch = _mine(embeddings, labels, margin, distance, where, memory)
  hardest_positive = numerics.masked_max(batch.distances, batch.positives)
  hardest_negative = -numerics.masked_max(-batch.distances, batch.negatives)
  values = jax.nn.relu(hardest_positive - hardest_negative + batch.margin)
  return reduce(values, reduction, weights=weights, where=_has_triplet(batch))


@loss
def batch_all_triplet_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: ArrayLike = 1.0,
  distance: Distance = "euclidean",
  memory: CrossBatchMemory | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Batch-all triplet loss, averaged over the active (non-zero) triplets.

  .. math::
    \ell_{apn} = [\, m + d(a, p) - d(a, n) ]_+, \qquad
    \ell_a = \frac{\sum_{p, n} \ell_{apn}}{|\{(p, n) : \ell_{apn} > 0\}|}

  over the valid triplets of anchor ``a`` (``y_p = y_a``, ``p ≠ a``,
  ``y_n ≠ y_a``): each anchor's value is the mean of its active triplets,
  the "BA≠0" variant that Hermans et al. recommend over averaging all
  triplets. Memory is ``O(batch³)`` (the triplet tensor is built), and
  ``O(batch × (batch + size)²)`` with a ``memory`` of ``size`` rows.

  Supported input range: With ``distance="squared_euclidean"`` the squared
  distances are computed in the inputs' dtype, so in float32 inputs are
  supported up to magnitude 1e15 (the checked range; products overflow from
  about 1.8e19).

  Args:
    embeddings: ``[batch, dim]`` floating embeddings.
    labels: ``[batch]`` integer class labels.
    margin: the margin ``m`` (a float or a traced scalar).
    distance: ``"euclidean"``, ``"squared_euclidean"`` or ``"cosine"``
      (``1 − cos``; a zero vector has cosine 0 with everything).
    memory: optional cross-batch memory (:func:`jaxloss.cross_batch_memory`);
      its written rows are extra positives and negatives of every anchor
      (references only, never anchors; no gradient), with the batch's
      ``distance``.
    where: optional ``[batch]`` mask; a masked example takes no part, neither
      as an anchor nor as a positive or negative of another anchor, so
      ``where`` is the same as slicing the example out.
    weights: optional per-anchor weights, broadcastable to ``[batch]``.
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``. An
    anchor with no active triplet (including one with no positive or no
    negative) has value 0 and is left out of ``"mean"``; so ``"mean"`` is the
    average of the per-anchor means over the anchors with an active triplet
    (the paper's BA≠0 average over all active triplets of the batch when each
    such anchor has as many active triplets).

  Matches the batch-all strategy of Hermans et al. (per anchor), which is
  pytorch-metric-learning's ``TripletMarginLoss`` over all triplets with the
  non-zero triplet losses averaged per anchor (PML's ``AvgNonZeroReducer``
  averages over the whole batch instead); with a ``memory``, PML's
  ``CrossBatchMemory`` around it (see :func:`batch_hard_triplet_loss`).

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[0.0, 0.0], [0.0, 1.5], [1.0, 0.0], [1.0, 1.0]])
  >>> jaxloss.batch_all_triplet_loss(x, jnp.array([0, 0, 1, 1]))
  Array([1.2928932, 1.0395951, 0.5986122, 0.7338762], dtype=float32)

  References:
    Hermans, Beyer and Leibe, `In Defense of the Triplet Loss for Person
    Re-Identification <https://arxiv.org/abs/1703.07737>`_, 2017.
  """
  batch = _mine(embeddings, labels, margin, distance, where, memory)
  d = batch.distances
  triplets = batch.positives[:, :, None] & batch.negatives[:, None, :]
  losses = jax.nn.relu(d[:, :, None] - d[:, None, :] + batch.margin)
  losses = jnp.where(triplets, losses, 0)
  active = jnp.sum(losses > 0, axis=(1, 2), dtype=d.dtype)
  values = numerics.safe_divide(jnp.sum(losses, axis=(1, 2)), active)
  return reduce(
    values, reduction, weights=weights, where=batch.keep & (active > 0)
  )


@loss
def semi_hard_triplet_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: ArrayLike = 1.0,
  distance: Distance = "euclidean",
  memory: CrossBatchMemory | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Semi-hard triplet loss (FaceNet), averaged over each anchor's positives.

  For each positive pair ``(a, p)`` the negative is the hardest one farther
  than the positive, or the easiest (farthest) one if none is:

  .. math::
    d^-_{ap} = \begin{cases}
      \min \{ d(a, n) : d(a, n) > d(a, p) \} & \text{if not empty} \\
      \max_n d(a, n) & \text{otherwise} \end{cases}, \qquad
    \ell_a = \frac{1}{|P_a|} \sum_{p \in P_a} [\, m + d(a, p) - d^-_{ap} ]_+

  over the negatives ``n`` (``y_n ≠ y_a``) and positives ``P_a``
  (``y_p = y_a``, ``p ≠ a``).

  Supported input range: With ``distance="squared_euclidean"`` the squared
  distances are computed in the inputs' dtype, so in float32 inputs are
  supported up to magnitude 1e15 (the checked range; products overflow from
  about 1.8e19).

  Args:
    embeddings: ``[batch, dim]`` floating embeddings.
    labels: ``[batch]`` integer class labels.
    margin: the margin ``m`` (a float or a traced scalar).
    distance: ``"euclidean"``, ``"squared_euclidean"`` or ``"cosine"``
      (``1 − cos``; a zero vector has cosine 0 with everything).
    memory: optional cross-batch memory (:func:`jaxloss.cross_batch_memory`);
      its written rows are extra positives and negatives of every anchor
      (references only, never anchors; no gradient), with the batch's
      ``distance``.
    where: optional ``[batch]`` mask; a masked example takes no part, neither
      as an anchor nor as a positive or negative of another anchor, so
      ``where`` is the same as slicing the example out.
    weights: optional per-anchor weights, broadcastable to ``[batch]``.
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``. An
    anchor with no positive or no negative in the batch has value 0 and is
    left out of ``"mean"``.

  Matches ``tfa.losses.triplet_semihard_loss`` (same negative rule, strict
  ``>``) per anchor; its scalar averages over all positive pairs, which is
  ``"mean"`` here when every anchor has as many positives.

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[0.0, 0.0], [0.0, 1.5], [1.0, 0.0], [1.0, 1.0]])
  >>> jaxloss.semi_hard_triplet_loss(x, jnp.array([0, 0, 1, 1]))
  Array([1.0857865 , 0.6972244 , 0.19722438, 0.881966  ], dtype=float32)

  References:
    Schroff, Kalenichenko and Philbin, `FaceNet: A Unified Embedding for Face
    Recognition and Clustering <https://arxiv.org/abs/1503.03832>`_, 2015.
  """
  batch = _mine(embeddings, labels, margin, distance, where, memory)
  d = batch.distances
  # Each anchor's negative distances in ascending order, non-negatives last.
  ascending = jnp.sort(
    jnp.where(batch.negatives, d, jnp.finfo(d.dtype).max), axis=-1
  )
  num_negatives = jnp.sum(batch.negatives, axis=-1)
  # Index of the first negative strictly farther than each positive, d(a, p).
  farther = jax.vmap(
    lambda row, queries: jnp.searchsorted(row, queries, side="right")
  )(ascending, d)
  easiest = jnp.maximum(num_negatives - 1, 0)[:, None]
  index = jnp.where(farther < num_negatives[:, None], farther, easiest)
  negative = jnp.take_along_axis(ascending, index, axis=-1)
  losses = jnp.where(
    batch.positives, jax.nn.relu(d - negative + batch.margin), 0
  )
  values = numerics.safe_divide(
    jnp.sum(losses, axis=-1), jnp.sum(batch.positives, axis=-1, dtype=d.dtype)
  )
  return reduce(values, reduction, weights=weights, where=_has_triplet(batch))


__all__ = [
  "batch_all_triplet_loss",
  "batch_hard_triplet_loss",
  "semi_hard_triplet_loss",
]
