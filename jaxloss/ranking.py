"""Ranking losses: margin ranking, pairwise, listwise and in-batch retrieval.

Pairwise and listwise losses take ``[..., list_size]`` scores with graded
relevance labels; the leading axes are lists. Every loss computes its
per-example values (one per pair, list or query) and reduces them through
:func:`jaxloss.reduce` (``where``, ``weights``, ``reduction``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, in_batch, numerics, value_checks
from jaxloss._core.chunking import ChunkSize
from jaxloss._core.in_batch import Similarity
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, split_where

_REDUCE_FNS: tuple[tuple[Callable[..., jax.Array] | None, Reduction], ...] = (
  (jnp.mean, "mean"),
  (jnp.sum, "sum"),
  (None, "none"),
)


@loss(targets=value_checks.signs)
def margin_ranking_loss(
  scores1: ArrayLike,
  scores2: ArrayLike,
  targets: ArrayLike,
  *,
  margin: ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Margin ranking loss: ``scores1`` should rank above ``scores2`` when y = 1.

  .. math::
    \ell = \max\big(0,\; -y\,(x_1 - x_2) + m\big)

  Args:
    scores1: ``[...]`` floating scores of the first items.
    scores2: ``[...]`` scores of the second items, same shape.
    targets: ``[...]`` ``1`` where ``scores1`` should be larger, ``-1`` where
      ``scores2`` should be (float, int or bool), same shape.
    margin: ``m >= 0``; may be a traced scalar.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.margin_ranking_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.margin_ranking_loss(jnp.array([1.0, 0.2]), jnp.array([0.5, 0.4]),
  ...                             jnp.array([1.0, 1.0]), margin=0.1)
  Array([0. , 0.3], dtype=float32)

  References:
    Herbrich, Graepel and Obermayer, `Large Margin Rank Boundaries for Ordinal
    Regression <https://doi.org/10.7551/mitpress/1113.003.0010>`_, 2000.
  """
  scores1, scores2 = checks.same_shape_floats(scores1=scores1, scores2=scores2)
  targets = checks.as_targets("targets", targets, scores1)
  checks.same_shape(scores1=scores1, targets=targets)
  checks.nonnegative("margin", margin)
  values = jax.nn.relu(
    numerics.like(margin, scores1) - targets * (scores1 - scores2)
  )
  return reduce(values, reduction, weights=weights, where=where)


# --------------------------------------------------------------------------- #
# Pairwise losses on [..., list_size] scores.


@loss
def pairwise_hinge_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Pairwise hinge loss (RankSVM) on each list.

  .. math::
    \ell_{ij} = [y_i > y_j]\, \max(0,\; m - (s_i - s_j))

  Every pair ``(i, j)`` of one list with ``y_i > y_j`` is a pair, and
  :math:`d_{ij} = s_i - s_j`. The ``"none"`` output is the pair matrix
  ``[..., list_size, list_size]``: entry ``[..., i, j]`` is the loss of pair
  ``(i, j)``, and exactly 0 where ``(i, j)`` is not a pair or is masked.
  ``"sum"`` adds the pairs; ``"mean"`` divides by the number of pairs (0 when a
  batch has none, e.g. all labels equal).

  Args:
    scores: ``[..., list_size]`` floating scores.
    labels: ``[..., list_size]`` graded relevance labels (float, int or bool),
      same shape.
    margin: ``m >= 0``; may be a traced scalar.
    where: optional boolean mask, of the pair matrix's rank (drops pairs:
      ``[..., 1, 1]`` drops lists), of the scores' shape (drops items: a pair
      counts only if both its items are valid, as rax's ``where``), or of
      the list shape ``[...]`` (drops lists).
    weights: optional weights, of the pair matrix's rank (per-pair weights for
      :func:`jaxloss.reduce`: ``"mean"`` is then the weighted mean over pairs),
      or of the scores' shape, or of the list shape ``[...]`` (per-item weights
      as in rax: pair ``(i, j)`` is multiplied by the weight of its more
      relevant item ``i``, and ``"mean"`` still divides by the number of pairs).
    reduction: ``"none"`` (default), ``"sum"``, ``"mean"`` or
      ``"batchmean"``; see :func:`jaxloss.reduce`.

  Returns:
    ``[..., list_size, list_size]`` pair losses, or a scalar.

  With item ``where``/``weights``, ``"mean"``/``"sum"`` equal rax's
  ``reduce_fn=jnp.mean``/``jnp.sum``, and ``"none"`` reshaped to
  ``[..., list_size ** 2]`` equals rax's ``reduce_fn=None``.

  Matches ``rax.pairwise_hinge_loss`` (whose margin is 1, the default).

  >>> import jax.numpy as jnp, jaxloss
  >>> scores, labels = jnp.array([2.0, 1.0, 0.0]), jnp.array([0.0, 1.0, 2.0])
  >>> jaxloss.pairwise_hinge_loss(scores, labels)
  Array([[0., 0., 0.],
         [2., 0., 0.],
         [3., 2., 0.]], dtype=float32)
  >>> float(jaxloss.pairwise_hinge_loss(scores, labels, reduction="mean"))
  2.333333...

  References:
    Joachims, `Optimizing Search Engines using Clickthrough Data
    <https://doi.org/10.1145/775047.775067>`_, 2002.
  """
  return _pairwise(
    jax.nn.relu, scores, labels, margin, where, weights, reduction
  )


@loss
def pairwise_logistic_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Pairwise logistic loss (RankNet) on each list.

  .. math::
    \ell_{ij} = [y_i > y_j]\, \log\big(1 + e^{\,m - (s_i - s_j)}\big)

  Every pair ``(i, j)`` of one list with ``y_i > y_j`` is a pair, and
  :math:`d_{ij} = s_i - s_j`. The ``"none"`` output is the pair matrix
  ``[..., list_size, list_size]``: entry ``[..., i, j]`` is the loss of pair
  ``(i, j)``, and exactly 0 where ``(i, j)`` is not a pair or is masked.
  ``"sum"`` adds the pairs; ``"mean"`` divides by the number of pairs (0 when a
  batch has none, e.g. all labels equal).

  Args:
    scores: ``[..., list_size]`` floating scores.
    labels: ``[..., list_size]`` graded relevance labels (float, int or bool),
      same shape.
    margin: ``m >= 0``; may be a traced scalar.
    where: optional boolean mask, of the pair matrix's rank (drops pairs:
      ``[..., 1, 1]`` drops lists), of the scores' shape (drops items: a pair
      counts only if both its items are valid, as rax's ``where``), or of
      the list shape ``[...]`` (drops lists).
    weights: optional weights, of the pair matrix's rank (per-pair weights for
      :func:`jaxloss.reduce`: ``"mean"`` is then the weighted mean over pairs),
      or of the scores' shape, or of the list shape ``[...]`` (per-item weights
      as in rax: pair ``(i, j)`` is multiplied by the weight of its more
      relevant item ``i``, and ``"mean"`` still divides by the number of pairs).
    reduction: ``"none"`` (default), ``"sum"``, ``"mean"`` or
      ``"batchmean"``; see :func:`jaxloss.reduce`.

  Returns:
    ``[..., list_size, list_size]`` pair losses, or a scalar.

  With item ``where``/``weights``, ``"mean"``/``"sum"`` equal rax's
  ``reduce_fn=jnp.mean``/``jnp.sum``, and ``"none"`` reshaped to
  ``[..., list_size ** 2]`` equals rax's ``reduce_fn=None``.

  Matches ``rax.pairwise_logistic_loss`` (``margin=0``, the default).

  >>> import jax.numpy as jnp, jaxloss
  >>> scores, labels = jnp.array([2.0, 1.0, 0.0]), jnp.array([0.0, 1.0, 2.0])
  >>> float(jaxloss.pairwise_logistic_loss(scores, labels, reduction="mean"))
  1.5844...

  References:
    Burges et al., `Learning to Rank using Gradient Descent
    <https://doi.org/10.1145/1102351.1102363>`_, 2005.
  """
  return _pairwise(
    jax.nn.softplus, scores, labels, margin, where, weights, reduction
  )


@loss
def pairwise_soft_zero_one_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Soft pairwise zero-one loss on each list.

  A smooth count of mis-ordered pairs.

  .. math::
    \ell_{ij} = [y_i > y_j]\, \sigma\big(m - (s_i - s_j)\big)

  Every pair ``(i, j)`` of one list with ``y_i > y_j`` is a pair, and
  :math:`d_{ij} = s_i - s_j`. The ``"none"`` output is the pair matrix
  ``[..., list_size, list_size]``: entry ``[..., i, j]`` is the loss of pair
  ``(i, j)``, and exactly 0 where ``(i, j)`` is not a pair or is masked.
  ``"sum"`` adds the pairs; ``"mean"`` divides by the number of pairs (0 when a
  batch has none, e.g. all labels equal).

  Args:
    scores: ``[..., list_size]`` floating scores.
    labels: ``[..., list_size]`` graded relevance labels (float, int or bool),
      same shape.
    margin: ``m >= 0``; may be a traced scalar.
    where: optional boolean mask, of the pair matrix's rank (drops pairs:
      ``[..., 1, 1]`` drops lists), of the scores' shape (drops items: a pair
      counts only if both its items are valid, as rax's ``where``), or of
      the list shape ``[...]`` (drops lists).
    weights: optional weights, of the pair matrix's rank (per-pair weights for
      :func:`jaxloss.reduce`: ``"mean"`` is then the weighted mean over pairs),
      or of the scores' shape, or of the list shape ``[...]`` (per-item weights
      as in rax: pair ``(i, j)`` is multiplied by the weight of its more
      relevant item ``i``, and ``"mean"`` still divides by the number of pairs).
    reduction: ``"none"`` (default), ``"sum"``, ``"mean"`` or
      ``"batchmean"``; see :func:`jaxloss.reduce`.

  Returns:
    ``[..., list_size, list_size]`` pair losses, or a scalar.

  With item ``where``/``weights``, ``"mean"``/``"sum"`` equal rax's
  ``reduce_fn=jnp.mean``/``jnp.sum``, and ``"none"`` reshaped to
  ``[..., list_size ** 2]`` equals rax's ``reduce_fn=None``.

  Matches ``rax.pairwise_soft_zero_one_loss`` (``margin=0``, the default).

  >>> import jax.numpy as jnp, jaxloss
  >>> scores, labels = jnp.array([2.0, 1.0, 0.0]), jnp.array([0.0, 1.0, 2.0])
  >>> float(jaxloss.pairwise_soft_zero_one_loss(scores, labels,
  ...                                           reduction="sum"))
  2.3429...

  References:
    Jagerman et al., `Rax: Composable Learning-to-Rank using JAX
    <https://doi.org/10.1145/3534678.3539065>`_, 2022.
  """
  return _pairwise(
    jax.nn.sigmoid, scores, labels, margin, where, weights, reduction
  )


def _pairwise(
  pair_loss: Callable[[jax.Array], jax.Array],
  scores: ArrayLike,
  labels: ArrayLike,
  margin: ArrayLike,
  where: ArrayLike | None,
  weights: ArrayLike | None,
  reduction: Reduction,
) -> jax.Array:
  """Pair matrix of ``pair_loss(m - (s_i - s_j))`` over pairs with y_i > y_j."""
  scores = checks.as_float("scores", scores)
  labels = checks.as_targets("labels", labels, scores)
  checks.same_shape(scores=scores, labels=labels)
  checks.min_rank("scores", scores, 1, "a list axis [..., list_size]")
  checks.nonnegative("margin", margin)
  differences = scores[..., :, None] - scores[..., None, :]
  item_where, pair_where = _item_or_pair("where", where, scores, differences)
  item_weights, pair_weights = _item_or_pair(
    "weights", weights, scores, differences
  )
  values = pair_loss(numerics.like(margin, scores) - differences)
  if item_weights is not None:
    values = values * item_weights[..., :, None]
  pairs = labels[..., :, None] > labels[..., None, :]
  if item_where is not None:
    pairs = pairs & item_where[..., :, None] & item_where[..., None, :]
  if pair_where is not None:
    pairs = pairs & pair_where
  return reduce(values, reduction, weights=pair_weights, where=pairs)


def _item_or_pair(
  arg: str, x: ArrayLike | None, scores: jax.Array, pairs: jax.Array
) -> tuple[jax.Array | None, jax.Array | None]:
  """Reads a pairwise loss's ``where`` or ``weights`` by its rank.

  Returns ``(per_item, per_pair)``, one of them ``None``: the pair matrix's
  rank gives a per-pair array of the pair matrix's shape (``pairs``'); the
  list shape's rank gives a per-list value shared by the list's items; any
  other rank is per item, broadcast to the scores' shape.
  """
  if x is None:
    return None, None
  x = checks.as_mask(arg, x) if arg == "where" else jnp.asarray(x)
  if x.ndim == scores.ndim + 1:
    return None, _broadcast(arg, x, pairs)
  if x.ndim == scores.ndim - 1:
    x = x[..., None]
  return _broadcast(arg, x, scores), None


def _broadcast(arg: str, x: jax.Array, like: jax.Array) -> jax.Array:
  """``where`` or ``weights`` broadcast to ``like``'s shape."""
  if arg == "where":
    return checks.broadcast_mask(arg, x, like.shape)
  return checks.broadcast_weights(arg, x, like)


# --------------------------------------------------------------------------- #
# Listwise losses.


@loss(labels=value_checks.bounded(0, mask="where"))
def ranking_softmax_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduce_fn: Callable[..., jax.Array] | None = jnp.mean,
  reduction: Reduction | None = None,
) -> jax.Array:
  r"""Softmax cross-entropy between relevance labels and each list's scores.

  .. math::
    \ell = -\sum_i w_i\, y_i \log \frac{e^{s_i}}{\sum_j e^{s_j}}

  Args:
    logits: ``[..., list_size]`` floating scores.
    labels: ``[..., list_size]`` relevance labels (not normalised), same shape.
    where: optional boolean mask of the logits' shape (drops items: they leave
      the softmax and the sum; a list with no valid item takes no part) or of
      the list shape ``[...]`` (drops lists).
    weights: optional weights; of the logits' rank, or a scalar, they are
      per-item weights ``w_i`` as in optax; of lower rank, per-list weights
      for :func:`jaxloss.reduce` (``"mean"`` is then the weighted mean).
    reduce_fn: optax's option: ``jnp.mean`` (default), ``jnp.sum`` or
      ``None`` (per-list values), i.e. ``reduction="mean"``, ``"sum"`` or
      ``"none"``.
    reduction: if given, it overrides ``reduce_fn``: ``"none"``, ``"sum"``,
      ``"mean"`` or ``"batchmean"``; see :func:`jaxloss.reduce`.

  Returns:
    A scalar by default (optax's default ``reduce_fn=jnp.mean``: the mean over
    lists with at least one valid item); ``[...]`` per-list losses with
    ``reduce_fn=None`` or ``reduction="none"``.

  Matches ``optax.losses.ranking_softmax_loss`` and ``rax.softmax_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> float(jaxloss.ranking_softmax_loss(jnp.array([2.0, 1.0, 3.0]),
  ...                                    jnp.array([1.0, 0.0, 0.0])))
  1.4076...

  References:
    Cao et al., `Learning to Rank: From Pairwise Approach to Listwise Approach
    <https://www.microsoft.com/en-us/research/publication/learning-to-rank-from-pairwise-approach-to-listwise-approach/>`_,
    2007.
  """
  logits = checks.as_float("logits", logits)
  labels = checks.as_targets("labels", labels, logits)
  checks.same_shape(logits=logits, labels=labels)
  checks.min_rank("logits", logits, 1, "a list axis [..., list_size]")
  reduction = _reduction_from(reduce_fn, reduction)
  items, lists = split_where(where, logits.shape, -1)
  list_weights = None
  if weights is not None:
    weights = jnp.asarray(weights)
    if weights.ndim in (0, logits.ndim):
      labels = labels * checks.broadcast_weights("weights", weights, logits)
    else:
      list_weights = weights
  # A list with no valid item has log-sum-exp 0; its entries are masked.
  log_probs = numerics.masked_log_softmax(logits, -1, items)
  if items is not None:
    labels = jnp.where(items, labels, 0)
  values = -jnp.sum(labels * log_probs, axis=-1)
  return reduce(values, reduction, weights=list_weights, where=lists)


@loss
def listmle_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""ListMLE: negative log-likelihood of the label order under Plackett-Luce.

  .. math::
    \ell = -\sum_{k} \Big(s_{\pi(k)}
           - \log \sum_{m \ge k} e^{s_{\pi(m)}}\Big)

  where :math:`\pi` sorts the valid items by decreasing label; ties keep
  their order in the list (the item that comes first ranks first), which is
  what rax does without a ``key``.

  Args:
    scores: ``[..., list_size]`` floating scores.
    labels: ``[..., list_size]`` relevance labels, same shape.
    where: optional boolean mask of the scores' shape (drops items) or of the
      list shape ``[...]`` (drops lists); a list with no valid item takes no
      part.
    weights: optional per-list weights broadcastable to ``[...]``; see
      :func:`jaxloss.reduce`.
    reduction: ``"none"`` (default, the jaxloss convention), ``"mean"`` (as
      rax's default ``reduce_fn=jnp.mean``), ``"sum"`` or ``"batchmean"``.

  Returns:
    ``[...]`` per-list losses, or a scalar for ``"mean"``/``"sum"``.

  Matches ``rax.listmle_loss`` with ``key=None`` (with ``reduction="mean"``
  for rax's default).

  >>> import jax.numpy as jnp, jaxloss
  >>> float(jaxloss.listmle_loss(jnp.array([2.0, 1.0, 3.0]),
  ...                            jnp.array([1.0, 0.0, 2.0])))
  0.7208...

  References:
    Xia et al., `Listwise Approach to Learning to Rank: Theory and Algorithm
    <http://icml2008.cs.helsinki.fi/papers/167.pdf>`_, 2008.
  """
  scores = checks.as_float("scores", scores)
  labels = checks.as_targets("labels", labels, scores)
  checks.same_shape(scores=scores, labels=labels)
  checks.min_rank("scores", scores, 1, "a list axis [..., list_size]")
  items, lists = split_where(where, scores.shape, -1)
  valid = jnp.ones(scores.shape, bool) if items is None else items
  axis = scores.ndim - 1
  position = jax.lax.broadcasted_iota(jnp.int32, scores.shape, axis)
  # Valid items first, then by decreasing label, ties by position.
  *_, scores, valid = jax.lax.sort(
    (
      jnp.logical_not(valid).astype(jnp.int32),
      -labels,
      position,
      scores,
      valid,
    ),
    dimension=axis,
    num_keys=3,
  )
  # The log-sum-exp of each item and those below it: a cumulative one, which
  # numerics.masked_logsumexp is not (it would need a [list, list] mask).
  # Invalid items come last and add exp(min - peak) = 0; -inf in their place
  # would make the gradient NaN.
  filled = jnp.where(valid, scores, jnp.finfo(scores.dtype).min)
  tail_lse = jax.lax.cumlogsumexp(filled, axis=axis, reverse=True)
  values = -jnp.sum(jnp.where(valid, scores - tail_lse, 0), axis=-1)
  return reduce(values, reduction, weights=weights, where=lists)


# --------------------------------------------------------------------------- #
# In-batch retrieval.


@loss
def multiple_negatives_ranking_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike | None = None,
  *,
  scale: ArrayLike = 20.0,
  similarity: Similarity = "cosine",
  symmetric: bool = False,
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""In-batch softmax loss: each anchor must pick its own positive.

  The candidates of every anchor are all positives of the batch plus all hard
  negatives of the batch; the target is the anchor's own positive.

  .. math::
    \ell_i^{\to} = -\log \frac{e^{\lambda\, \mathrm{sim}(a_i, p_i)}}
      {\sum_j e^{\lambda\, \mathrm{sim}(a_i, p_j)}
       + \sum_{j, n} e^{\lambda\, \mathrm{sim}(a_i, n_{jn})}},
    \qquad
    \ell_i = \begin{cases} \ell_i^{\to} & \text{symmetric=False} \\
      \tfrac12 \big(\ell_i^{\to} + \ell_i^{\leftarrow}\big)
        & \text{symmetric=True}
    \end{cases}

  where :math:`\ell_i^{\leftarrow} = -\log \big(e^{\lambda\,\mathrm{sim}(a_i,
  p_i)} / \sum_j e^{\lambda\,\mathrm{sim}(a_j, p_i)}\big)` picks the anchor of
  positive ``i`` among all anchors.

  Supported input range: With ``similarity="dot"`` the dot products are computed
  in the inputs' dtype, so in float32 inputs are supported up to magnitude 1e15
  (the checked range; products overflow from about 1.8e19).

  Args:
    anchors: ``[batch, dim]`` floating embeddings.
    positives: ``[batch, dim]`` embeddings; row ``i`` is anchor ``i``'s
      positive.
    negatives: optional hard negatives, ``[batch, dim]`` (one per anchor) or
      ``[batch, k, dim]``; every anchor sees all of them.
    scale: ``λ > 0``, the inverse temperature; may be a traced scalar.
    similarity: ``"cosine"`` (``x / max(‖x‖, 1e-12)``, as
      ``torch.nn.functional.normalize``: a zero vector gives similarity 0) or
      ``"dot"``.
    symmetric: also the positive → anchor direction, averaged with the
      anchor → candidates one.
    chunk_size: ``"auto"`` (dense while the ``batch × candidates`` matrix
      fits the 16 MiB budget, else chunked within it; see
      :mod:`jaxloss.contrastive`), ``None`` (dense) or the number of
      candidate columns per chunk (an online log-sum-exp and a custom VJP:
      reverse mode only).
    where: optional ``[batch]`` mask; a masked example leaves the batch: as an
      anchor, and its positive and negatives as candidates (so ``where`` equals
      slicing it out).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-anchor loss, or a scalar. Its ``"mean"`` is the
    sentence-transformers loss.

  Matches sentence-transformers' ``MultipleNegativesRankingLoss`` (and,
  with ``symmetric=True``, ``MultipleNegativesSymmetricRankingLoss``, whose
  backward direction uses the positives only).

  >>> import jax.numpy as jnp, jaxloss
  >>> anchors = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> positives = jnp.array([[1.0, 0.1], [0.2, 1.0]])
  >>> jaxloss.multiple_negatives_ranking_loss(anchors, positives, scale=5.0)
  Array([0.0182..., 0.0121...], dtype=float32)

  References:
    Henderson et al., `Efficient Natural Language Response Suggestion for
    Smart Reply <https://arxiv.org/abs/1705.00652>`_, 2017.
  """
  anchors, positives, negatives, scale = in_batch.retrieval_inputs(
    anchors, positives, negatives, scale, similarity
  )
  keep = in_batch.example_mask(where, anchors.shape[:1])
  values = _retrieval(
    anchors,
    positives,
    negatives,
    scale,
    keep,
    similarity=similarity,
    symmetric=bool(symmetric),
    chunk_size=checks.chunk_size(chunk_size),
  )
  return reduce(values, reduction, weights=weights, where=keep)


# Jitted: chunked, it holds a scan and a custom VJP, which would be traced
# again at every eager call.
@functools.partial(
  jax.jit, static_argnames=("similarity", "symmetric", "chunk_size")
)
def _retrieval(
  anchors,
  positives,
  negatives,
  scale,
  keep,
  *,
  similarity,
  symmetric,
  chunk_size,
):
  return in_batch.retrieval_values(
    anchors,
    positives,
    negatives,
    scale,
    keep,
    similarity=similarity,
    symmetric=symmetric,
    stats=in_batch.local_stats(chunk_size),
  )


# --------------------------------------------------------------------------- #
# Helpers.


def _reduction_from(
  reduce_fn: Callable[..., jax.Array] | None, reduction: Reduction | None
) -> Reduction:
  """optax's ``reduce_fn`` as a jaxloss ``reduction``; ``reduction`` wins."""
  if reduction is not None:
    return reduction
  for fn, value in _REDUCE_FNS:
    if reduce_fn is fn:
      return value
  raise checks.fail(
    f"unknown reduce_fn={reduce_fn!r}; valid values are jnp.mean, jnp.sum "
    "and None (or pass reduction=...)."
  )


__all__ = [
  "listmle_loss",
  "margin_ranking_loss",
  "multiple_negatives_ranking_loss",
  "pairwise_hinge_loss",
  "pairwise_logistic_loss",
  "pairwise_soft_zero_one_loss",
  "ranking_softmax_loss",
]
