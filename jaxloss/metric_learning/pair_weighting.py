"""Losses that weight every pair of the batch: circle, multi-similarity,
lifted structure (and its generalisation) and tuplet margin.

Each follows pytorch-metric-learning 2.9's loss of the same name with its
default distance (cosine similarity of L2-normalised embeddings, or the
Euclidean distance between them for the lifted-structure losses) and its
default reducer; every pair of the batch takes part (no miner).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, in_batch, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.metric_learning._distances import pairwise_distances
from jaxloss.metric_learning.memory import CrossBatchMemory, references


class _Pairs(NamedTuple):
  """The pairs between anchors (rows) and references (columns)."""

  positives: jax.Array  # [n, m] same label, both kept, not the anchor itself
  negatives: jax.Array  # [n, m] different label, both kept
  keep: jax.Array  # [n] kept anchors


def _batch(
  embeddings: ArrayLike, labels: ArrayLike, where: ArrayLike | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Checks ``[batch, dim]`` embeddings and ``[batch]`` labels; returns
  ``(embeddings, labels, keep)``."""
  embeddings = checks.as_float("embeddings", embeddings)
  labels = checks.as_labels("labels", labels)
  checks.rank("embeddings", embeddings, 2)
  checks.shape(
    "labels", labels, embeddings.shape[:1], "one label per embedding"
  )
  keep = in_batch.example_mask(where, embeddings.shape[:1])
  return embeddings, labels, keep


def _pairs(
  labels: jax.Array,
  keep: jax.Array,
  reference_labels: jax.Array,
  reference_keep: jax.Array,
) -> _Pairs:
  """Positive and negative pairs of anchors against references.

  The first ``len(labels)`` references are the anchors themselves (the
  batch), so the pair ``(i, i)`` is left out; references after them (a
  cross-batch memory's rows) are never the anchor.
  """
  n, m = labels.shape[0], reference_labels.shape[0]
  both = keep[:, None] & reference_keep[None, :]
  same = in_batch.same_label(labels, reference_labels)
  itself = jnp.eye(n, m, dtype=bool)
  return _Pairs(
    positives=same & both & ~itself, negatives=~same & both, keep=keep
  )


def _cosines(anchors: jax.Array, references: jax.Array) -> jax.Array:
  """``[n, m]`` cosine similarities of the L2-normalised rows (a zero row has
  cosine 0 with everything), in full matmul precision."""
  return jnp.matmul(
    numerics.l2_normalize(anchors),
    numerics.l2_normalize(references).T,
    precision=jax.lax.Precision.HIGHEST,
  )


def _log1p_sum_exp(x: jax.Array, mask: jax.Array) -> jax.Array:
  """``log(1 + Σ exp(x))`` over the unmasked entries of the last axis; 0
  (gradient 0) for a row with none, as pytorch-metric-learning's
  ``logsumexp(..., add_one=True)`` gives."""
  lse = numerics.masked_logsumexp(x, mask)
  return jnp.where(jnp.any(mask, axis=-1), jnp.logaddexp(0, lse), 0)


def _per_pair_reduce(
  pair_values: jax.Array,
  pairs: jax.Array,
  reduction: Reduction,
  weights: ArrayLike | None,
  where: jax.Array,
) -> jax.Array:
  """Reduces ``[n, m]`` positive-pair values so that ``"mean"`` is the mean
  over the positive pairs: each anchor's value is the mean over its pairs,
  weighted by their number (so ``"none"`` is each anchor's sum over its
  pairs, ``"sum"`` the sum over all pairs)."""
  dtype = pair_values.dtype
  count = jnp.sum(pairs, axis=-1, dtype=dtype)
  total = jnp.sum(jnp.where(pairs, pair_values, 0), axis=-1)
  mean = numerics.safe_divide(total, count)
  if weights is not None:
    count = count * checks.broadcast_weights(
      "weights", weights, count, same_rank=True
    )
  return reduce(
    mean, reduction, weights=count, where=where & jnp.any(pairs, -1)
  )


# ---- multi-similarity --------------------------------------------------------


def _multi_similarity_values(
  cosines: jax.Array,
  pairs: _Pairs,
  alpha: ArrayLike,
  beta: ArrayLike,
  base: ArrayLike,
) -> jax.Array:
  """Per-anchor multi-similarity loss from ``[n, m]`` anchor-reference
  cosines and pairs: the core shared with any extra references (a
  cross-batch memory adds columns to ``cosines`` and the pair masks)."""
  a, b, offset = (numerics.like(v, cosines) for v in (alpha, beta, base))
  positive = _log1p_sum_exp(
    jnp.asarray(a * (offset - cosines)), pairs.positives
  )
  negative = _log1p_sum_exp(
    jnp.asarray(b * (cosines - offset)), pairs.negatives
  )
  return positive / a + negative / b


@loss
def multi_similarity_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: ArrayLike = 2.0,
  beta: ArrayLike = 50.0,
  base: ArrayLike = 0.5,
  memory: CrossBatchMemory | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multi-similarity loss: soft weighting of every positive and negative
  pair by its cosine similarity.

  .. math::
    \ell_i = \frac{1}{\alpha} \log\Big(1 + \sum_{p \in P_i}
               e^{-\alpha (S_{ip} - \lambda)}\Big)
           + \frac{1}{\beta} \log\Big(1 + \sum_{n \in N_i}
               e^{\beta (S_{in} - \lambda)}\Big)

  with ``S`` the cosine similarity, ``P_i`` the other examples of ``i``'s
  class and ``N_i`` the examples of the other classes; an empty sum's term is
  0. Every pair takes part: the paper's hard-pair mining is
  pytorch-metric-learning's separate ``MultiSimilarityMiner``, not part of
  the loss.

  Args:
    embeddings: ``[batch, dim]`` floating embeddings (normalised here; a zero
      vector has cosine 0 with everything).
    labels: ``[batch]`` integer class labels.
    alpha: the positive scale ``α > 0``.
    beta: the negative scale ``β > 0``.
    base: the similarity offset ``λ``.
    memory: optional cross-batch memory (:func:`jaxloss.cross_batch_memory`);
      its written rows are extra positives and negatives of every anchor
      (references only, never anchors; no gradient). With it, matches PML's
      ``CrossBatchMemory(MultiSimilarityLoss())`` while its queue has not
      wrapped (PML enqueues the batch first; its gradient then flows through
      the anchors only, see :func:`batch_hard_triplet_loss`).
    where: optional ``[batch]`` mask; a masked example takes no part, neither
      as an anchor nor in another anchor's pairs (``where`` equals slicing).
    weights: optional per-anchor weights, broadcastable to ``[batch]``.
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``. An
    anchor without positives (or negatives) keeps its other term.

  Matches ``pytorch_metric_learning.losses.MultiSimilarityLoss`` (its
  defaults, ``CosineSimilarity`` and ``MeanReducer``): its value is
  ``reduction="mean"``, the mean over every anchor.

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
  >>> jaxloss.multi_similarity_loss(x, jnp.array([0, 0, 1, 1]))
  Array([0.5990695, 0.7590762, 0.7590762, 0.5990695], dtype=float32)

  References:
    Wang, Han, Huang, Dong and Scott, `Multi-Similarity Loss with General
    Pair Weighting for Deep Metric Learning
    <https://arxiv.org/abs/1904.06627>`_, 2019.
  """
  embeddings, labels, keep = _batch(embeddings, labels, where)
  checks.positive("alpha", alpha)
  checks.positive("beta", beta)
  if memory is None:
    pairs = _pairs(labels, keep, labels, keep)
    cosines = _cosines(embeddings, embeddings)
  else:  # the memory's rows follow the batch as references.
    refs = references(embeddings, labels, keep, memory)
    pairs = _pairs(labels, keep, refs.labels, refs.valid)
    cosines = _cosines(embeddings, jnp.concatenate([embeddings, refs.memory]))
  values = _multi_similarity_values(cosines, pairs, alpha, beta, base)
  return reduce(values, reduction, weights=weights, where=keep)


# ---- circle ------------------------------------------------------------------


@loss
def circle_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: ArrayLike = 0.4,
  gamma: ArrayLike = 80.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Circle loss (pair-wise labels): self-paced weights on the cosine
  similarities of positive and negative pairs.

  .. math::
    \ell_i = \operatorname{softplus}\Big(
      \log \sum_{p \in P_i} e^{-\gamma\, a_p (s_p - \Delta_p)}
      + \log \sum_{n \in N_i} e^{\gamma\, a_n (s_n - \Delta_n)}\Big)

  with ``a_p = [1 + m − s_p]_+``, ``a_n = [s_n + m]_+``, ``Δ_p = 1 − m``,
  ``Δ_n = m`` and ``s`` the cosine similarity. The weights ``a_p`` and
  ``a_n`` are constants for the gradient (``stop_gradient``), as in the
  paper and pytorch-metric-learning.

  Args:
    embeddings: ``[batch, dim]`` floating embeddings (normalised here; a zero
      vector has cosine 0 with everything).
    labels: ``[batch]`` integer class labels.
    margin: the relaxation ``m``.
    gamma: the scale ``γ > 0``.
    where: optional ``[batch]`` mask; a masked example takes no part, neither
      as an anchor nor in another anchor's pairs (``where`` equals slicing).
    weights: optional per-anchor weights, broadcastable to ``[batch]``.
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``. An
    anchor with no positive or no negative has value 0 and is left out of
    ``"mean"``.

  Matches ``pytorch_metric_learning.losses.CircleLoss`` (``m=0.4``,
  ``gamma=80``, ``CosineSimilarity``): its ``AvgNonZeroReducer`` averages
  the anchors whose loss is above 0, which is ``reduction="mean"`` here
  (the anchors with a positive and a negative; they differ only where a
  softplus underflows to exactly 0, which these defaults cannot reach).

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
  >>> jaxloss.circle_loss(x, jnp.array([0, 0, 1, 1]))
  Array([38.4    , 60.92801, 60.92801, 38.4    ], dtype=float32)

  References:
    Sun, Cheng, Zhang, Zhang, Zheng, Wang and Wei, `Circle Loss: A Unified
    Perspective of Pair Similarity Optimization
    <https://arxiv.org/abs/2002.10857>`_, 2020.
  """
  embeddings, labels, keep = _batch(embeddings, labels, where)
  checks.positive("gamma", gamma)
  pairs = _pairs(labels, keep, labels, keep)
  s = _cosines(embeddings, embeddings)
  m, g = numerics.like(margin, s), numerics.like(gamma, s)
  constant = jax.lax.stop_gradient(s)
  positive = -g * jax.nn.relu(1 + m - constant) * (s - (1 - m))
  negative = g * jax.nn.relu(constant + m) * (s - m)
  logits = numerics.masked_logsumexp(
    positive, pairs.positives
  ) + numerics.masked_logsumexp(negative, pairs.negatives)
  valid = (
    keep & jnp.any(pairs.positives, axis=-1) & jnp.any(pairs.negatives, -1)
  )
  values = jnp.where(valid, jax.nn.softplus(logits), 0)
  return reduce(values, reduction, weights=weights, where=valid)


# ---- lifted structure --------------------------------------------------------


def _unit_distances(embeddings: jax.Array) -> jax.Array:
  """Euclidean distances between the L2-normalised rows
  (pytorch-metric-learning's default ``LpDistance``)."""
  return pairwise_distances(numerics.l2_normalize(embeddings), "euclidean")


@loss
def lifted_structure_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  pos_margin: ArrayLike = 0.0,
  neg_margin: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Lifted structure loss: each positive pair against every negative of
  either of its two examples.

  .. math::
    J_{ij} = \log\Big(\sum_{k \in N_i} e^{m_- - d_{ik}}
                      + \sum_{l \in N_j} e^{m_- - d_{jl}}\Big)
             + d_{ij} - m_+, \qquad
    \ell_{ij} = \tfrac12 [J_{ij}]_+^2

  for the ordered positive pairs ``(i, j)``, with ``d`` the Euclidean
  distance between L2-normalised embeddings.

  Args:
    embeddings: ``[batch, dim]`` floating embeddings (normalised here).
    labels: ``[batch]`` integer class labels.
    pos_margin: ``m₊``, subtracted from the positive distance.
    neg_margin: ``m₋``, the negative margin.
    where: optional ``[batch]`` mask; a masked example takes no part, neither
      as an anchor nor in another anchor's pairs (``where`` equals slicing).
    weights: optional per-anchor weights, broadcastable to ``[batch]``
      (each weighs every pair of its anchor).
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor sums of ``ℓ_ij`` over its positive pairs, or a
    scalar: ``"sum"`` over all positive pairs, ``"mean"`` the mean over the
    positive pairs (each anchor's mean weighted by its number of positive
    pairs). Anchors without a positive or a negative take no part.

  Matches ``pytorch_metric_learning.losses.LiftedStructureLoss`` (its
  defaults, ``LpDistance`` of normalised embeddings, ``MeanReducer`` over
  the positive pairs): its value is ``reduction="mean"``, which is the
  paper's ``1/(2|P|) Σ [J]₊²`` over the unordered pairs.

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
  >>> jaxloss.lifted_structure_loss(x, jnp.array([0, 0, 1, 1]))
  Array([3.423837, 3.423837, 3.423837, 3.423837], dtype=float32)

  References:
    Oh Song, Xiang, Jegelka and Savarese, `Deep Metric Learning via Lifted
    Structured Feature Embedding <https://arxiv.org/abs/1511.06452>`_, 2016.
  """
  embeddings, labels, keep = _batch(embeddings, labels, where)
  pairs = _pairs(labels, keep, labels, keep)
  d = _unit_distances(embeddings)
  negatives = numerics.masked_logsumexp(
    numerics.like(neg_margin, d) - d, pairs.negatives
  )
  has_negative = jnp.any(pairs.negatives, axis=-1)
  joint = jnp.logaddexp(negatives[:, None], negatives[None, :])
  pair_values = (
    jnp.square(jax.nn.relu(joint + d - numerics.like(pos_margin, d))) / 2
  )
  positives = pairs.positives & has_negative[:, None] & has_negative[None, :]
  return _per_pair_reduce(pair_values, positives, reduction, weights, keep)


@loss
def generalized_lifted_structure_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  pos_margin: ArrayLike = 0.0,
  neg_margin: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Generalised lifted structure loss (Hermans et al.): a soft hardest
  positive and a soft hardest negative per anchor.

  .. math::
    \ell_i = \Big[\log \sum_{p \in P_i} e^{d_{ip} - m_+}
                  + \log \sum_{n \in N_i} e^{m_- - d_{in}}\Big]_+

  with ``d`` the Euclidean distance between L2-normalised embeddings; an
  empty sum's log is taken as 0 (pytorch-metric-learning's convention, so
  an anchor without positives keeps its negative term).

  Args:
    embeddings: ``[batch, dim]`` floating embeddings (normalised here).
    labels: ``[batch]`` integer class labels.
    pos_margin: ``m₊``, subtracted from the positive distances.
    neg_margin: ``m₋``, the negative margin.
    where: optional ``[batch]`` mask; a masked example takes no part, neither
      as an anchor nor in another anchor's pairs (``where`` equals slicing).
    weights: optional per-anchor weights, broadcastable to ``[batch]``.
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``pytorch_metric_learning.losses.GeneralizedLiftedStructureLoss``
  (its defaults, ``LpDistance`` of normalised embeddings, ``MeanReducer``
  over every anchor): its value is ``reduction="mean"``.

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
  >>> jaxloss.generalized_lifted_structure_loss(x, jnp.array([0, 0, 1, 1]))
  Array([1.6387634, 2.1451268, 2.1451268, 1.6387634], dtype=float32)

  References:
    Hermans, Beyer and Leibe, `In Defense of the Triplet Loss for Person
    Re-Identification <https://arxiv.org/abs/1703.07737>`_, 2017 (section
    2, the generalisation of Oh Song et al.'s lifted structure loss).
  """
  embeddings, labels, keep = _batch(embeddings, labels, where)
  pairs = _pairs(labels, keep, labels, keep)
  d = _unit_distances(embeddings)
  positive = numerics.masked_logsumexp(
    d - numerics.like(pos_margin, d), pairs.positives
  )
  negative = numerics.masked_logsumexp(
    numerics.like(neg_margin, d) - d, pairs.negatives
  )
  values = jax.nn.relu(positive + negative)
  return reduce(values, reduction, weights=weights, where=keep)


# ---- tuplet margin -----------------------------------------------------------


@loss
def tuplet_margin_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: ArrayLike = 0.1,
  scale: ArrayLike = 64.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Tuplet margin loss: each positive pair, its angle reduced by a margin,
  against the anchor's negatives.

  .. math::
    \ell_{ap} = \log\Big(1 + \sum_{n \in N_a}
                  e^{s (\cos\theta_{an} - \cos(\theta_{ap} - \beta))}\Big)

  for the ordered positive pairs ``(a, p)``, with ``θ`` the angle between
  the embeddings and ``β`` the margin in radians. ``cos(θ − β)`` is computed
  as ``c cos β + sqrt(1 − c²) sin β`` (a safe square root, cosines clipped
  to [−1, 1]), so identical embeddings give finite gradients.

  Args:
    embeddings: ``[batch, dim]`` floating embeddings (normalised here; a zero
      vector has cosine 0 with everything).
    labels: ``[batch]`` integer class labels.
    margin: the angular margin ``β`` in radians.
    scale: the scale ``s > 0``.
    where: optional ``[batch]`` mask; a masked example takes no part, neither
      as an anchor nor in another anchor's pairs (``where`` equals slicing).
    weights: optional per-anchor weights, broadcastable to ``[batch]``
      (each weighs every pair of its anchor).
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor sums of ``ℓ_ap`` over its positive pairs, or a
    scalar: ``"sum"`` over all positive pairs, ``"mean"`` the mean over the
    positive pairs (each anchor's mean weighted by its number of positive
    pairs). Anchors without a positive or a negative take no part.

  Matches ``pytorch_metric_learning.losses.TupletMarginLoss`` (its default
  ``margin=5.73`` degrees is ``0.1`` radian here; ``scale=64``,
  ``CosineSimilarity``, ``MeanReducer`` over the positive pairs): its value
  is ``reduction="mean"``. pytorch-metric-learning takes ``acos`` of the
  cosine, whose gradient is infinite for identical embeddings.

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
  >>> jaxloss.tuplet_margin_loss(x, jnp.array([0, 0, 1, 1]), scale=8.0)
  Array([1.303561 , 2.5884788, 2.5884788, 1.303561 ], dtype=float32)

  References:
    Yu and Tao, `Deep Metric Learning with Tuplet Margin Loss
    <https://openaccess.thecvf.com/content_ICCV_2019/html/Yu_Deep_Metric_Learning_With_Tuplet_Margin_Loss_ICCV_2019_paper.html>`_,
    2019.
  """
  embeddings, labels, keep = _batch(embeddings, labels, where)
  checks.positive("scale", scale)
  pairs = _pairs(labels, keep, labels, keep)
  c = jnp.clip(_cosines(embeddings, embeddings), -1, 1)
  if checks.is_static_number(margin):
    cos_m: float | jax.Array = math.cos(margin)
    sin_m: float | jax.Array = math.sin(margin)
  else:
    margin = numerics.like(margin, c)
    cos_m, sin_m = jnp.cos(margin), jnp.sin(margin)
  shifted = c * cos_m + numerics.safe_sqrt(1 - jnp.square(c)) * sin_m
  s = numerics.like(scale, c)
  # log(1 + Σ_n e^{s c_an} e^{−s cos(θ_ap − β)}): one log-sum-exp per anchor.
  negatives = numerics.masked_logsumexp(s * c, pairs.negatives)
  pair_values = jnp.logaddexp(0, negatives[:, None] - s * shifted)
  has_negative = jnp.any(pairs.negatives, axis=-1)
  positives = pairs.positives & has_negative[:, None]
  return _per_pair_reduce(pair_values, positives, reduction, weights, keep)


__all__ = [
  "circle_loss",
  "generalized_lifted_structure_loss",
  "lifted_structure_loss",
  "multi_similarity_loss",
  "tuplet_margin_loss",
]
