"""The sharded in-batch losses: CLIP, SigLIP, InfoNCE, SupCon and multiple
negatives ranking over a batch split across devices.

Each equals its one-device loss (:mod:`jaxloss.contrastive`,
:func:`jaxloss.multiple_negatives_ranking_loss`) on the concatenated global
batch; the checks and the maths are those of :mod:`jaxloss._core.in_batch`,
with the columns of the similarity matrix brought from the other devices by
:mod:`jaxloss._core.ring`.

``chunk_size="auto"`` (the default) bounds the temporary memory per device:
a ``[local rows, columns]`` block of logits (``columns``: a received block for
``"ring"``, the gathered batch for ``"all_gather"``) is built whole while it
and what autodiff keeps of it fit 16 MiB (four float32 copies), and otherwise
cut into the largest power-of-two chunk of columns that fits, at least 128
(``jaxloss._core.chunking``). The chunked and ring paths support
reverse-mode differentiation only.
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxloss._core import checks, in_batch, ring, value_checks
from jaxloss._core.chunking import ChunkSize
from jaxloss._core.in_batch import Similarity
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction
from jaxloss._core.ring import AxisName, Strategy
from jaxloss.distributed._reduction import global_reduce


def _stats(
  axis_name: AxisName, strategy: str, chunk_size: ChunkSize
) -> in_batch.StatsFn:
  """Checks the sharding options; returns the ``stats`` function of
  ``strategy`` (a clear error outside ``shard_map``/``pmap``)."""
  checks.option("strategy", strategy, ring.STRATEGIES)
  chunk_size = checks.chunk_size(chunk_size)
  ring.axis_size(axis_name)
  return ring.stats_fn(strategy, axis_name, chunk_size)


@loss(temperature=value_checks.positive)
def clip_loss(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  axis_name: AxisName,
  strategy: Strategy = "ring",
  temperature: ArrayLike = 0.07,
  normalize: bool = True,
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""CLIP's symmetric contrastive loss over the global batch of pairs.

  .. math::
    L = \frac{\hat x \hat y^\top}{\tau}, \qquad
    \ell_i = \tfrac12 \Big(\big(\log\textstyle\sum_j e^{L_{ij}} - L_{ii}\big)
                   + \big(\log\textstyle\sum_j e^{L_{ji}} - L_{ii}\big)\Big)

  with ``i, j`` over the global batch: :func:`jaxloss.clip_loss` of the
  concatenated slices.

  Args:
    image_embeddings: ``[b, dim]`` this device's image embeddings ``x``.
    text_embeddings: ``[b, dim]`` text embeddings ``y`` of the same pairs.
    axis_name: the mesh (or pmap) axis, or tuple of axes, the batch is
      sharded over.
    strategy: ``"ring"`` or ``"all_gather"`` (see the module docstring).
    temperature: ``τ > 0``, the same on every device; may be traced.
    normalize: L2-normalise the embeddings first.
    chunk_size: columns per chunk of the online log-sum-exp: ``"auto"``
      (the default: one block while it fits the 16 MiB budget, else the
      chunk that keeps each block within it; see the module docstring), an
      int, or ``None`` (``"ring"``: the whole received block;
      ``"all_gather"``: dense).
    where: optional ``[b]`` mask; a masked pair takes no part anywhere.
    weights: optional per-pair weights, broadcastable to ``[b]``.
    reduction: see :func:`jaxloss.reduce`, over the global batch; default
      ``"mean"``.

  Returns:
    A scalar, replicated (``[b]`` local values for ``"none"``).

  Matches :func:`jaxloss.clip_loss` on the concatenated global batch, value
  and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jd.shard(jd.clip_loss, mesh)(x, x, temperature=0.5)
  Array(0.12692809, dtype=float32)

  References:
    Radford et al., `Learning Transferable Visual Models From Natural
    Language Supervision <https://arxiv.org/abs/2103.00020>`_, 2021.
  """
  images, texts, temperature = in_batch.clip_inputs(
    image_embeddings, text_embeddings, temperature
  )
  stats = _stats(axis_name, strategy, chunk_size)
  keep = in_batch.example_mask(where, images.shape[:1])
  values = in_batch.clip_values(
    images, texts, temperature, keep, normalize=bool(normalize), stats=stats
  )
  return global_reduce(values, reduction, keep, weights, axis_name)


@loss(logit_scale=value_checks.positive)
def siglip_loss(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  axis_name: AxisName,
  strategy: Strategy = "ring",
  logit_scale: ArrayLike = 10.0,
  logit_bias: ArrayLike = -10.0,
  normalize: bool = True,
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""SigLIP's pairwise sigmoid loss over the global batch.

  .. math::
    \ell_i = -\sum_j \log \sigma\big(z_{ij}
             (t\, \hat x_i \cdot \hat y_j + b)\big),
    \qquad z_{ij} = \begin{cases} +1 & i = j \\ -1 & i \ne j \end{cases}

  with ``i, j`` over the global batch: :func:`jaxloss.siglip_loss` of the
  concatenated slices (``"mean"`` divides by the global batch, as
  big_vision does).

  Args:
    image_embeddings: ``[b, dim]`` this device's image embeddings ``x``.
    text_embeddings: ``[b, dim]`` text embeddings ``y`` of the same pairs.
    axis_name: the mesh (or pmap) axis, or tuple of axes, of the batch.
    strategy: ``"ring"`` or ``"all_gather"``.
    logit_scale: the scale ``t > 0`` itself (pass ``jnp.exp(t')`` for a
      learned log-scale); may be traced.
    logit_bias: the bias ``b``; may be traced.
    normalize: L2-normalise the embeddings first.
    chunk_size: text columns per chunk (``"auto"``: within the budget;
      ``None``: the whole block or dense).
    where: optional ``[b]`` mask; a masked pair is neither a row nor a column.
    weights: optional per-image weights, broadcastable to ``[b]``.
    reduction: see :func:`jaxloss.reduce`, global; default ``"mean"``.

  Returns:
    A scalar, replicated (``[b]`` local row sums for ``"none"``).

  Matches :func:`jaxloss.siglip_loss` on the concatenated global batch, value
  and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jd.shard(jd.siglip_loss, mesh)(x, x, strategy="all_gather")
  Array(0.6931926, dtype=float32)

  References:
    Zhai, Mustafa, Kolesnikov and Beyer, `Sigmoid Loss for Language Image
    Pre-Training <https://arxiv.org/abs/2303.15343>`_, 2023.
  """
  images, texts, scale, bias = in_batch.siglip_inputs(
    image_embeddings, text_embeddings, logit_scale, logit_bias
  )
  stats = _stats(axis_name, strategy, chunk_size)
  keep = in_batch.example_mask(where, images.shape[:1])
  values = in_batch.siglip_values(
    images,
    texts,
    scale,
    bias,
    keep,
    normalize=bool(normalize),
    stats=stats,
    start=ring.start_index(axis_name, images.shape[0]),
  )
  return global_reduce(values, reduction, keep, weights, axis_name)


@loss(temperature=value_checks.positive)
def infonce_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike | None = None,
  *,
  axis_name: AxisName,
  strategy: Strategy = "ring",
  temperature: ArrayLike = 0.07,
  similarity: Similarity = "cosine",
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""InfoNCE with the global batch's positives as candidates.

  .. math::
    \ell_i = -\log \frac{e^{s(a_i, p_i)/\tau}}
      {\sum_j e^{s(a_i, p_j)/\tau} + \sum_k e^{s(a_i, n_k)/\tau}}

  with ``j`` over the global batch: :func:`jaxloss.infonce_loss` of the
  concatenated slices.

  Args:
    anchors: ``[b, dim]`` this device's anchors.
    positives: ``[b, dim]`` their positives.
    negatives: optional ``[b, k, dim]`` per-anchor negatives (used locally),
      or ``[m, dim]``: this device's slice of the global shared negatives,
      which every anchor of the global batch sees.
    axis_name: the mesh (or pmap) axis, or tuple of axes, of the batch.
    strategy: ``"ring"`` or ``"all_gather"``.
    temperature: ``τ > 0``; may be traced.
    similarity: ``"cosine"`` or ``"dot"``.
    chunk_size: candidate columns per chunk (``"auto"``: within the budget;
      ``None``: the whole block or dense).
    where: optional ``[b]`` mask; a masked example is neither an anchor nor a
      candidate (shared negatives stay candidates).
    weights: optional per-anchor weights, broadcastable to ``[b]``.
    reduction: see :func:`jaxloss.reduce`, global; default ``"mean"``.

  Returns:
    A scalar, replicated (``[b]`` local values for ``"none"``).

  Matches :func:`jaxloss.infonce_loss` on the concatenated global batch, value
  and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jd.shard(jd.infonce_loss, mesh)(a, a, temperature=1.0)
  Array(0.31326163, dtype=float32)

  References:
    van den Oord, Li and Vinyals, `Representation Learning with Contrastive
    Predictive Coding <https://arxiv.org/abs/1807.03748>`_, 2018.
  """
  anchors, positives, negatives, temperature = in_batch.infonce_inputs(
    anchors, positives, negatives, temperature, similarity
  )
  stats = _stats(axis_name, strategy, chunk_size)
  keep = in_batch.example_mask(where, anchors.shape[:1])
  values = in_batch.infonce_values(
    anchors,
    positives,
    negatives,
    temperature,
    keep,
    similarity=similarity,
    stats=stats,
  )
  return global_reduce(values, reduction, keep, weights, axis_name)


@loss(temperature=value_checks.positive)
def ntxent(
  embeddings: ArrayLike,
  labels: ArrayLike,
  temperature: ArrayLike = 0.07,
  *,
  axis_name: AxisName,
  strategy: Strategy = "ring",
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""NT-Xent (optax's form) with the global batch's examples as positives
  and negatives.

  .. math::
    \ell_{ij} = \operatorname{softplus}\Big(\log \sum_{k:\, y_k \ne y_i}
      e^{c_{ik}/\tau} - c_{ij}/\tau\Big)
    \quad \text{for each positive pair } y_j = y_i,\ j \ne i

  with ``j`` and ``k`` over the global batch: :func:`jaxloss.ntxent` of the
  concatenated slices. Two passes over the columns (the ring's or the
  gathered ones): the negatives' log-sum-exp of each anchor, then its
  positive pairs' terms.

  Args:
    embeddings: ``[b, dim]`` this device's embeddings.
    labels: ``[b]`` their integer labels; equal labels (anywhere in the
      global batch) make positive pairs.
    temperature: ``τ > 0``; may be traced.
    axis_name: the mesh (or pmap) axis, or tuple of axes, of the batch.
    strategy: ``"ring"`` or ``"all_gather"``.
    chunk_size: candidate columns per chunk (``"auto"``: within the budget;
      ``None``: the whole block or dense).
    where: optional ``[b]`` mask; a masked example is neither an anchor nor a
      candidate.
    weights: optional per-anchor weights, broadcastable to ``[b]``.
    reduction: see :func:`jaxloss.reduce`, global; default ``"mean"``, the
      mean over the global batch's positive pairs.

  Returns:
    A scalar, replicated (``[b]`` local values for ``"none"``).

  Matches :func:`jaxloss.ntxent` on the concatenated global batch, value and
  gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> x = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
  >>> jd.shard(jd.ntxent, mesh)(x, jnp.array([0, 0, 1, 1]), 1.0)
  Array(0.5978082, dtype=float32)

  References:
    Chen, Kornblith, Norouzi and Hinton, `A Simple Framework for Contrastive
    Learning of Visual Representations <https://arxiv.org/abs/2002.05709>`_,
    2020.
  """
  embeddings, labels, temperature = in_batch.ntxent_inputs(
    embeddings, labels, temperature
  )
  stats = _stats(axis_name, strategy, chunk_size)
  keep = in_batch.example_mask(where, labels.shape)
  values, count = in_batch.ntxent_values(
    embeddings,
    labels,
    temperature,
    keep,
    stats=stats,
    start=ring.start_index(axis_name, embeddings.shape[0]),
  )
  if weights is not None:
    count = count * checks.broadcast_weights(
      "weights", weights, values, same_rank=True
    )
  return global_reduce(values, reduction, keep, count, axis_name)


@loss(temperature=value_checks.positive, base_temperature=value_checks.positive)
def supervised_contrastive_loss(
  embeddings: ArrayLike,
  labels: ArrayLike | None,
  *,
  axis_name: AxisName,
  strategy: Strategy = "ring",
  temperature: ArrayLike = 0.07,
  base_temperature: ArrayLike = 0.07,
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""Supervised contrastive (SupCon) loss over the global batch.

  .. math::
    \ell_a = -\frac{\tau}{\tau_b} \frac{1}{|P(a)|} \sum_{p \in P(a)}
      \log \frac{e^{z_a \cdot z_p / \tau}}
                {\sum_{c \ne a} e^{z_a \cdot z_c / \tau}}

  with ``a, p, c`` over every view of the global batch; the labels travel
  with the embeddings. :func:`jaxloss.supervised_contrastive_loss` of the
  concatenated slices; anchors without positives are left out of ``"mean"``.

  Args:
    embeddings: ``[b, dim]`` or ``[b, views, dim]`` this device's
      embeddings, used as given.
    labels: ``[b]`` integer labels, or ``None``: each example of the global
      batch its own class (the positives are its other views).
    axis_name: the mesh (or pmap) axis, or tuple of axes, of the batch.
    strategy: ``"ring"`` or ``"all_gather"``.
    temperature: ``τ > 0``; may be traced.
    base_temperature: ``τ_b > 0``.
    chunk_size: candidate views per chunk (``"auto"``: within the budget;
      ``None``: the whole block or dense).
    where: optional mask broadcastable to ``[b]`` or ``[b, views]``.
    weights: optional weights broadcastable to the per-anchor shape.
    reduction: see :func:`jaxloss.reduce`, global; default ``"mean"``.

  Returns:
    A scalar, replicated (``[b]`` or ``[b, views]`` local values for
    ``"none"``).

  Matches :func:`jaxloss.supervised_contrastive_loss` on the concatenated
  global batch, value and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  >>> jd.shard(jd.supervised_contrastive_loss, mesh)(
  ...     x, jnp.array([0, 0, 1]), temperature=1.0, base_temperature=1.0)
  Array(0.31326163, dtype=float32)

  References:
    Khosla et al., `Supervised Contrastive Learning
    <https://arxiv.org/abs/2004.11362>`_, 2020.
  """
  embeddings, labels, temperature, base_temperature = (
    in_batch.supervised_inputs(
      embeddings, labels, temperature, base_temperature
    )
  )
  stats = _stats(axis_name, strategy, chunk_size)
  keep = in_batch.example_mask(where, embeddings.shape[:-1])
  values, keep = in_batch.supervised_values(
    embeddings,
    labels,
    temperature,
    base_temperature,
    keep,
    stats=stats,
    start=ring.start_index(axis_name, embeddings.shape[0]),
  )
  return global_reduce(values, reduction, keep, weights, axis_name)


@loss
def multiple_negatives_ranking_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike | None = None,
  *,
  axis_name: AxisName,
  strategy: Strategy = "ring",
  scale: ArrayLike = 20.0,
  similarity: Similarity = "cosine",
  symmetric: bool = False,
  chunk_size: ChunkSize = "auto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""In-batch softmax ranking loss with the global batch as candidates.

  .. math::
    \ell_i^{\to} = -\log \frac{e^{\lambda\, \mathrm{sim}(a_i, p_i)}}
      {\sum_j e^{\lambda\, \mathrm{sim}(a_i, p_j)}
       + \sum_{j, n} e^{\lambda\, \mathrm{sim}(a_i, n_{jn})}}

  with ``j`` over the global batch; with ``symmetric``, averaged with
  :math:`\ell_i^{\leftarrow}`, which picks the anchor of positive ``i``
  among all anchors. :func:`jaxloss.multiple_negatives_ranking_loss` of the
  concatenated slices.

  Args:
    anchors: ``[b, dim]`` this device's anchors.
    positives: ``[b, dim]`` their positives.
    negatives: optional hard negatives ``[b, dim]`` or ``[b, k, dim]``; every
      anchor of the global batch sees all of them.
    axis_name: the mesh (or pmap) axis, or tuple of axes, of the batch.
    strategy: ``"ring"`` or ``"all_gather"``.
    scale: ``λ > 0``, the inverse temperature; may be traced.
    similarity: ``"cosine"`` (``x / max(‖x‖, 1e-12)``) or ``"dot"``.
    symmetric: also the positive → anchor direction.
    chunk_size: candidate columns per chunk (``"auto"``: within the budget;
      ``None``: the whole block or dense).
    where: optional ``[b]`` mask; a masked example leaves the batch, with its
      positive and negatives.
    weights: optional per-anchor weights, broadcastable to ``[b]``.
    reduction: see :func:`jaxloss.reduce`, global; default ``"mean"``.

  Returns:
    A scalar, replicated (``[b]`` local values for ``"none"``).

  Matches :func:`jaxloss.multiple_negatives_ranking_loss` on the concatenated
  global batch, value and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> p = jnp.array([[1.0, 0.1], [0.2, 1.0]])
  >>> jd.shard(jd.multiple_negatives_ranking_loss, mesh)(a, p, scale=5.0)
  Array(0.0151..., dtype=float32)

  References:
    Henderson et al., `Efficient Natural Language Response Suggestion for
    Smart Reply <https://arxiv.org/abs/1705.00652>`_, 2017.
  """
  anchors, positives, negatives, scale = in_batch.retrieval_inputs(
    anchors, positives, negatives, scale, similarity
  )
  stats = _stats(axis_name, strategy, chunk_size)
  keep = in_batch.example_mask(where, anchors.shape[:1])
  values = in_batch.retrieval_values(
    anchors,
    positives,
    negatives,
    scale,
    keep,
    similarity=similarity,
    symmetric=bool(symmetric),
    stats=stats,
  )
  return global_reduce(values, reduction, keep, weights, axis_name)


__all__ = [
  "clip_loss",
  "infonce_loss",
  "multiple_negatives_ranking_loss",
  "ntxent",
  "siglip_loss",
  "supervised_contrastive_loss",
]
