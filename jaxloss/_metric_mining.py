"""In-batch metric-learning losses: triplet mining, N-pair, uniformity.

Public through :mod:`jaxloss.metric_learning` (kept in its own file so that each
file stays short). Also holds the helpers the metric-learning losses share:
pairwise distances, masked extremes and cross-entropy, hyper-parameter casts.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxloss._core import checks, numerics, online_softmax
from jaxloss._core import reduction as reduction_lib

DISTANCES = ("euclidean", "squared_euclidean", "cosine")


def is_static(value) -> bool:
  """Whether a hyper-parameter is a Python number (checked at trace time)."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  """``x / ‖x‖`` along ``axis``; a zero vector stays 0, with a zero gradient."""
  norm = numerics.safe_norm(x, axis=axis, keepdims=True)
  return numerics.safe_divide(x, norm)


def pairwise_distances(x: jax.Array, distance: str) -> jax.Array:
  """``[n, n]`` distances between the rows of ``x`` (``[n, dim]``).

  Euclidean distances use the Gram form ``‖x_i‖² + ‖x_j‖² − 2 x_i·x_j`` in full
  matmul precision, clamped at 0, with an exact 0 diagonal and a safe square
  root (finite gradients for identical rows). Cosine distance is
  ``1 − cos(x_i, x_j)``; a zero vector has cosine 0 with everything.
  """
  eye = jnp.eye(x.shape[0], dtype=bool)
  if distance == "cosine":
    unit = normalize(x)
    distances = 1 - jnp.matmul(
      unit, unit.T, precision=jax.lax.Precision.HIGHEST
    )
  else:
    squared_norms = jnp.sum(jnp.square(x), axis=-1)
    gram = jnp.matmul(x, x.T, precision=jax.lax.Precision.HIGHEST)
    distances = squared_norms[:, None] + squared_norms[None, :] - 2 * gram
  distances = jnp.where(eye, 0, jnp.maximum(distances, 0))
  return numerics.safe_sqrt(distances) if distance == "euclidean" else distances


def masked_max(x: jax.Array, mask: jax.Array, axis: int = -1) -> jax.Array:
  """Max of ``x`` over the ``True`` entries of ``mask``; 0 where none are."""
  picked = jnp.max(jnp.where(mask, x, jnp.finfo(x.dtype).min), axis=axis)
  return jnp.where(jnp.any(mask, axis=axis), picked, 0)


def masked_min(x: jax.Array, mask: jax.Array, axis: int = -1) -> jax.Array:
  """Min of ``x`` over the ``True`` entries of ``mask``; 0 where none are."""
  picked = jnp.min(jnp.where(mask, x, jnp.finfo(x.dtype).max), axis=axis)
  return jnp.where(jnp.any(mask, axis=axis), picked, 0)


def example_mask(name: str, where, size: int) -> jax.Array:
  """The ``[size]`` mask of an in-batch loss (all ``True`` without ``where``)."""
  if where is None:
    return jnp.ones((size,), bool)
  return checks.broadcast_mask(name, "where", where, (size,))


def masked_cross_entropy(logits, labels, element_mask):
  """``−log softmax(logits)[label]`` over the unmasked entries of the last
  axis; 0, with a finite gradient, where the label's entry is masked.

  Computed as ``log(1 + Σ_{k≠y} exp(z_k − z_y))``: the label's own term is
  an exact 1, so a confident prediction (a loss far below the logits' size)
  keeps its relative precision however the compiler rounds ``z`` (``lse(z) −
  z_y`` rounds at the size of ``z``).
  """
  take = lambda x: jnp.take_along_axis(x, labels[..., None], axis=-1)
  others = ~jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
  if element_mask is not None:
    others = others & element_mask
  lse = online_softmax.masked_logsumexp(logits - take(logits), others, axis=-1)
  values = jnp.where(jnp.any(others, axis=-1), jnp.logaddexp(0, lse), 0)
  if element_mask is None:
    return values
  return jnp.where(take(element_mask)[..., 0], values, 0)


class _Batch(NamedTuple):
  distances: jax.Array  # [n, n]
  positives: jax.Array  # [n, n] same label, not the anchor itself, both kept
  negatives: jax.Array  # [n, n] different label, both kept
  keep: jax.Array  # [n]
  margin: jax.Array | float


def _mine(name, embeddings, labels, margin, distance, where) -> _Batch:
  """Checks the inputs of a mining loss and builds its pair masks."""
  embeddings = checks.as_float(name, "embeddings", embeddings)
  labels = checks.as_labels(name, "labels", labels)
  checks.rank(name, "embeddings", embeddings, 2)
  checks.shape(
    name, "labels", labels, embeddings.shape[:1], "one label per embedding"
  )
  checks.option(name, "distance", distance, DISTANCES)
  checks.nonnegative(name, "margin", margin)
  n = embeddings.shape[0]
  keep = example_mask(name, where, n)
  both_kept = keep[:, None] & keep[None, :]
  same = labels[:, None] == labels[None, :]
  return _Batch(
    distances=pairwise_distances(embeddings, distance),
    positives=same & both_kept & ~jnp.eye(n, dtype=bool),
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


_ARGS_DOC = """
  Args:
    embeddings: ``[batch, dim]`` floating embeddings.
    labels: ``[batch]`` integer class labels.
    margin: the margin ``m`` (a float or a traced scalar).
    distance: ``"euclidean"``, ``"squared_euclidean"`` or ``"cosine"``
      (``1 − cos``; a zero vector has cosine 0 with everything).
    where: optional ``[batch]`` mask; a masked example takes no part, neither
      as an anchor nor as a positive or negative of another anchor, so
      ``where`` is the same as slicing the example out.
    weights: optional per-anchor weights, broadcastable to ``[batch]``.
    reduction: see :func:`jaxloss.reduce`; default ``"none"``."""


def batch_hard_triplet_loss(
  embeddings,
  labels,
  *,
  margin=1.0,
  distance="euclidean",
  where=None,
  weights=None,
  reduction="none",
):
  r"""Batch-hard triplet loss: each anchor's hardest positive and negative.

  .. math::
    \ell_a = \Big[\, m + \max_{p:\, y_p = y_a,\, p \ne a} d(a, p)
                   - \min_{n:\, y_n \ne y_a} d(a, n) \Big]_+
  {args}

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``. An
    anchor with no positive or no negative in the batch has value 0 and is
    left out of ``"mean"``.

  Matches ``tfa.losses.triplet_hard_loss`` (``"euclidean"`` is its ``"L2"``,
  ``"squared_euclidean"`` its ``"squared-L2"``, ``"cosine"`` its
  ``"angular"``) when every anchor has a positive and a negative.

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[0.0, 0.0], [0.0, 1.5], [1.0, 0.0], [1.0, 1.0]])
  >>> jaxloss.batch_hard_triplet_loss(x, jnp.array([0, 0, 1, 1]))
  Array([1.5     , 1.381966, 1.      , 0.881966], dtype=float32)

  References:
    Hermans, Beyer and Leibe, `In Defense of the Triplet Loss for Person
    Re-Identification <https://arxiv.org/abs/1703.07737>`_, 2017.
  """
  name = "batch_hard_triplet_loss"
  batch = _mine(name, embeddings, labels, margin, distance, where)
  hardest_positive = masked_max(batch.distances, batch.positives)
  hardest_negative = masked_min(batch.distances, batch.negatives)
  values = jax.nn.relu(hardest_positive - hardest_negative + batch.margin)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=_has_triplet(batch), name=name
  )


def batch_all_triplet_loss(
  embeddings,
  labels,
  *,
  margin=1.0,
  distance="euclidean",
  where=None,
  weights=None,
  reduction="none",
):
  r"""Batch-all triplet loss, averaged over the active (non-zero) triplets.

  .. math::
    \ell_{apn} = [\, m + d(a, p) - d(a, n) ]_+, \qquad
    \ell_a = \frac{\sum_{p, n} \ell_{apn}}{|\{(p, n) : \ell_{apn} > 0\}|}

  over the valid triplets of anchor ``a`` (``y_p = y_a``, ``p ≠ a``,
  ``y_n ≠ y_a``): each anchor's value is the mean of its active triplets,
  the "BA≠0" variant that Hermans et al. recommend over averaging all
  triplets. Memory is ``O(batch³)`` (the triplet tensor is built).
  {args}

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``. An
    anchor with no active triplet (including one with no positive or no
    negative) has value 0 and is left out of ``"mean"``; so ``"mean"`` is the
    average of the per-anchor means over the anchors with an active triplet
    (the paper's BA≠0 average over all active triplets of the batch when each
    such anchor has as many active triplets).

  Matches the batch-all strategy of Hermans et al. (per anchor); no packaged
  reference implementation is used.

  >>> import jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[0.0, 0.0], [0.0, 1.5], [1.0, 0.0], [1.0, 1.0]])
  >>> jaxloss.batch_all_triplet_loss(x, jnp.array([0, 0, 1, 1]))
  Array([1.2928932, 1.0395951, 0.5986122, 0.7338762], dtype=float32)

  References:
    Hermans, Beyer and Leibe, `In Defense of the Triplet Loss for Person
    Re-Identification <https://arxiv.org/abs/1703.07737>`_, 2017.
  """
  name = "batch_all_triplet_loss"
  batch = _mine(name, embeddings, labels, margin, distance, where)
  d = batch.distances
  triplets = batch.positives[:, :, None] & batch.negatives[:, None, :]
  losses = jax.nn.relu(d[:, :, None] - d[:, None, :] + batch.margin)
  losses = jnp.where(triplets, losses, 0)
  active = jnp.sum(losses > 0, axis=(1, 2), dtype=d.dtype)
  values = numerics.safe_divide(jnp.sum(losses, axis=(1, 2)), active)
  return reduction_lib.reduce(
    values,
    reduction,
    weights=weights,
    where=batch.keep & (active > 0),
    name=name,
  )


def semi_hard_triplet_loss(
  embeddings,
  labels,
  *,
  margin=1.0,
  distance="euclidean",
  where=None,
  weights=None,
  reduction="none",
):
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
  {args}

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
  name = "semi_hard_triplet_loss"
  batch = _mine(name, embeddings, labels, margin, distance, where)
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
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=_has_triplet(batch), name=name
  )


def npair_loss(
  anchors, positives, *, l2_reg=0.0, where=None, weights=None, reduction="none"
):
  r"""Multi-class N-pair loss: each anchor's positive against the others'.

  .. math::
    \ell_i = \log\Big(1 + \sum_{j \ne i} \exp(f_i^\top f^+_j
             - f_i^\top f^+_i)\Big) + \frac{\lambda}{4}
             \big(\|f_i\|^2 + \|f^+_i\|^2\big)

  the cross-entropy of ``softmax_j(f_i · f⁺_j)`` with label ``i``. The
  examples are assumed to come from distinct classes.

  Args:
    anchors: ``[batch, dim]`` floating anchor embeddings ``f``.
    positives: ``[batch, dim]`` positive embeddings ``f⁺``; row ``i`` is the
      positive of anchor ``i`` and a negative of every other anchor.
    l2_reg: ``λ``, the weight of the embedding-norm regulariser the paper
      adds; off by default.
    where: optional ``[batch]`` mask; a masked pair is neither an anchor nor
      a negative of another anchor (``where`` equals slicing).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar for ``"sum"``/``"mean"``.

  With ``"mean"`` this matches ``tf.contrib.losses.metric_learning.npairs_loss``
  (``reg_lambda = l2_reg``) on distinct labels.

  >>> import jax.numpy as jnp, jaxloss
  >>> f = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jaxloss.npair_loss(f, f)
  Array([0.3132617, 0.3132617], dtype=float32)

  References:
    Sohn, `Improved Deep Metric Learning with Multi-class N-pair Loss
    Objective <https://papers.nips.cc/paper/6200>`_, 2016.
  """
  name = "npair_loss"
  anchors, positives = checks.same_shape_floats(
    name, anchors=anchors, positives=positives
  )
  checks.rank(name, "anchors", anchors, 2)
  checks.nonnegative(name, "l2_reg", l2_reg)
  keep = example_mask(name, where, anchors.shape[0])
  logits = jnp.matmul(anchors, positives.T)
  labels = jnp.arange(anchors.shape[0])
  values = masked_cross_entropy(
    logits, labels, jnp.broadcast_to(keep[None, :], logits.shape)
  )
  if not (is_static(l2_reg) and l2_reg == 0):
    norms = jnp.sum(jnp.square(anchors) + jnp.square(positives), axis=-1)
    values = values + numerics.like(l2_reg, anchors) / 4 * norms
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=keep, name=name
  )


def uniformity_loss(x, *, t=2, where=None, weights=None, reduction="none"):
  r"""Uniformity: the log of the mean Gaussian potential over pairs ``i ≠ j``.

  .. math::
    \mathcal{L} = \log \frac{\sum_{i \ne j} w_i w_j\, e^{-t \|x_i - x_j\|^2}}
                            {\sum_{i \ne j} w_i w_j}

  This is a batch-level value (the log of a mean over pairs does not split
  into per-example terms), so it is a scalar for every ``reduction``.

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
  name = "uniformity_loss"
  x = checks.as_float(name, "x", x)
  checks.rank(name, "x", x, 2)
  checks.positive(name, "t", t)
  checks.option(name, "reduction", reduction, reduction_lib.REDUCTIONS)
  n = x.shape[0]
  example_weights = example_mask(name, where, n).astype(x.dtype)
  if weights is not None:
    example_weights = example_weights * checks.broadcast_weights(
      name, "weights", weights, example_weights
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


for _fn in (
  batch_hard_triplet_loss,
  batch_all_triplet_loss,
  semi_hard_triplet_loss,
):
  _fn.__doc__ = _fn.__doc__.replace("  {args}", _ARGS_DOC)

__all__ = [
  "batch_all_triplet_loss",
  "batch_hard_triplet_loss",
  "npair_loss",
  "semi_hard_triplet_loss",
  "uniformity_loss",
]
