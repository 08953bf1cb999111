"""A cross-batch memory (XBM, MoCo's queue) as pure state.

:func:`cross_batch_memory` returns a :class:`CrossBatchMemory`, a pytree of
arrays (no Python-side mutable object): pass it through ``jit``, keep it in a
training state, and write each batch with :func:`update_cross_batch_memory`
(a ring buffer). The in-batch losses that take ``memory=``
(:func:`~jaxloss.batch_hard_triplet_loss`,
:func:`~jaxloss.batch_all_triplet_loss`,
:func:`~jaxloss.semi_hard_triplet_loss`,
:func:`~jaxloss.multi_similarity_loss`, :func:`~jaxloss.infonce_loss`) use
its written rows as extra references: candidates only, never anchors, with no
gradient into the memory.

Order of a step. jaxloss computes the loss against the memory as it was
*before* the batch is written, then the step writes the batch::

  loss = jaxloss.batch_hard_triplet_loss(x, y, memory=memory)
  memory = jaxloss.update_cross_batch_memory(memory, x, y)

pytorch-metric-learning's ``CrossBatchMemory`` enqueues the batch first and
then compares the batch with the whole queue, leaving out each anchor's own
entry. The two agree whenever enqueuing the batch evicts nothing (the
memory's written rows plus the batch fit its size); once the queue is full,
PML's references are the newest ``size`` rows including the batch, jaxloss's
the batch plus the ``size`` rows before it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jaxloss._core import checks, in_batch, numerics
from jaxloss._core import loss as loss_lib


class CrossBatchMemory(NamedTuple):
  """The state of a cross-batch memory (a pytree of four arrays).

  Attributes:
    embeddings: ``[size, dim]`` stored embeddings (rows not yet written are
      zeros and never used).
    labels: ``[size]`` their integer labels.
    position: ``[]`` int32, the row the next write starts at.
    filled: ``[]`` int32, how many rows hold an embedding (at most ``size``);
      rows ``0 … filled − 1`` do, since writes start at row 0 and wrap.
  """

  embeddings: jax.Array
  labels: jax.Array
  position: jax.Array
  filled: jax.Array

  @property
  def valid(self) -> jax.Array:
    """``[size]`` mask of the rows that hold an embedding."""
    return jnp.arange(self.labels.shape[0]) < self.filled


def cross_batch_memory(
  size: int, dim: int, *, dtype: DTypeLike = jnp.float32
) -> CrossBatchMemory:
  r"""An empty cross-batch memory of ``size`` rows of ``dim`` features.

  .. math:: M = 0^{\,\mathrm{size} \times \mathrm{dim}}, \qquad
    \mathrm{position} = \mathrm{filled} = 0

  Args:
    size: the number of rows (references) it keeps, a positive int.
    dim: the embedding dimension.
    dtype: the floating dtype of the stored embeddings (float32 by default;
      the embeddings written are cast to it).

  Returns:
    A :class:`CrossBatchMemory` with no row written: a ``NamedTuple`` of
    ``embeddings`` ``[size, dim]``, ``labels`` ``[size]`` int32, and int32
    scalars ``position`` and ``filled``; ``memory.valid`` is the ``[size]``
    mask of the written rows.

  Matches the state of pytorch-metric-learning's ``CrossBatchMemory``
  (``embedding_memory``, ``label_memory``, ``queue_idx``, with a count of
  written rows for its ``has_been_filled``); see the module's note on the
  order of enqueuing and computing the loss.

  >>> import jax.numpy as jnp, jaxloss
  >>> memory = jaxloss.cross_batch_memory(4, 2)
  >>> memory = jaxloss.update_cross_batch_memory(
  ...     memory, jnp.ones((3, 2)), jnp.array([0, 1, 2]))
  >>> memory.valid
  Array([ True,  True,  True, False], dtype=bool)

  References:
    Wang, Zhang, Huang and Scott, `Cross-Batch Memory for Embedding Learning
    <https://arxiv.org/abs/1912.06798>`_, 2020; He, Fan, Wu, Xie and
    Girshick, `Momentum Contrast for Unsupervised Visual Representation
    Learning <https://arxiv.org/abs/1911.05722>`_, 2020.
  """
  return loss_lib.named("cross_batch_memory", _empty, size, dim, dtype)


def _empty(size: int, dim: int, dtype: DTypeLike) -> CrossBatchMemory:
  for name, value in (("size", size), ("dim", dim)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise checks.fail(f"`{name}` must be a positive int, got {value!r}.")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise checks.fail(f"`dtype` must be floating, got {dtype!r}.", TypeError)
  return CrossBatchMemory(
    embeddings=jnp.zeros((size, dim), dtype),
    labels=jnp.zeros((size,), jnp.int32),
    position=jnp.zeros((), jnp.int32),
    filled=jnp.zeros((), jnp.int32),
  )


def _check_memory(memory: object) -> CrossBatchMemory:
  if not isinstance(memory, CrossBatchMemory):
    raise checks.fail(
      "`memory` must be a CrossBatchMemory (from jaxloss.cross_batch_memory), "
      f"got {type(memory).__name__}.",
      TypeError,
    )
  return memory


def update_cross_batch_memory(
  memory: CrossBatchMemory,
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
) -> CrossBatchMemory:
  r"""Writes a batch into the memory, ring-buffer style (a pure function).

  .. math::
    M_{(\mathrm{position} + r) \bmod \mathrm{size}} \leftarrow x_i
    \quad \text{for the } r\text{-th kept row } x_i

  The kept rows are written in order from ``memory.position``, wrapping round
  at the end, as if written one at a time: a batch with more kept rows than
  the memory's size leaves its last ``size`` rows. Their gradient is stopped.

  Args:
    memory: the :class:`CrossBatchMemory` to write into.
    embeddings: ``[batch, dim]`` floating embeddings (cast to the memory's
      dtype).
    labels: ``[batch]`` integer labels (``infonce_loss`` does not read them:
      any integers, e.g. zeros, will do there).
    where: optional ``[batch]`` mask; only the kept rows are written.

  Returns:
    The new :class:`CrossBatchMemory` (jit-able; under ``jit`` with donated
    state, the update is in place).

  Matches pytorch-metric-learning's ``CrossBatchMemory.add_to_memory`` (rows
  written at ``queue_idx + arange(batch) mod size``, detached), which asserts
  instead that a batch fits the memory.

  >>> import jax.numpy as jnp, jaxloss
  >>> memory = jaxloss.cross_batch_memory(3, 1)
  >>> memory = jaxloss.update_cross_batch_memory(
  ...     memory, jnp.array([[1.0], [2.0]]), jnp.array([1, 2]))
  >>> memory = jaxloss.update_cross_batch_memory(
  ...     memory, jnp.array([[3.0], [4.0]]), jnp.array([3, 4]))
  >>> memory.labels, memory.position, memory.filled
  (Array([4, 2, 3], dtype=int32), Array(1, dtype=int32), Array(3, dtype=int32))

  References:
    Wang, Zhang, Huang and Scott, `Cross-Batch Memory for Embedding Learning
    <https://arxiv.org/abs/1912.06798>`_, 2020.
  """
  return loss_lib.named(
    "update_cross_batch_memory", _update, memory, embeddings, labels, where
  )


def _update(
  memory: CrossBatchMemory,
  embeddings: ArrayLike,
  labels: ArrayLike,
  where: ArrayLike | None,
) -> CrossBatchMemory:
  memory = _check_memory(memory)
  size, dim = memory.embeddings.shape
  embeddings = checks.as_float("embeddings", embeddings)
  labels = checks.as_labels("labels", labels)
  checks.shape("embeddings", embeddings, (None, dim), "[batch, memory dim]")
  checks.shape("labels", labels, embeddings.shape[:1], "one label per row")
  keep = in_batch.example_mask(where, labels.shape)
  # The kept rows' order, and which of them a row-by-row write would leave.
  rank = jnp.cumsum(keep, dtype=jnp.int32) - 1
  written = jnp.sum(keep, dtype=jnp.int32)
  survives = keep & (rank >= written - size)
  index = jnp.where(survives, (memory.position + rank) % size, size)
  return CrossBatchMemory(
    embeddings=memory.embeddings.at[index].set(
      jax.lax.stop_gradient(embeddings).astype(memory.embeddings.dtype),
      mode="drop",
    ),
    labels=memory.labels.at[index].set(
      labels.astype(memory.labels.dtype), mode="drop"
    ),
    position=(memory.position + written) % size,
    filled=jnp.minimum(memory.filled + written, size),
  )


class References(NamedTuple):
  """A batch's candidates with a memory: the batch's rows, then the
  memory's (gradient stopped)."""

  memory: jax.Array  # [size, dim] the memory's rows, in the batch's dtype
  labels: jax.Array  # [n + size] candidate labels
  valid: jax.Array  # [n + size] candidate validity (kept / written)
  own: jax.Array  # [n, n + size] each anchor's own column


def references(
  embeddings: jax.Array,
  labels: jax.Array | None,
  keep: jax.Array,
  memory: object,
) -> References:
  """Turns ``(batch, memory)`` into the candidates of the batch's anchors.

  ``embeddings`` ``[n, dim]`` are the batch's candidate columns (the
  embeddings themselves for the mining losses, the positives for InfoNCE),
  ``labels`` their ``[n]`` labels (or ``None``: no labels), ``keep`` their
  ``[n]`` mask. The memory's written rows follow them as candidates only."""
  memory = _check_memory(memory)
  checks.shape(
    "memory.embeddings",
    memory.embeddings,
    (None, embeddings.shape[-1]),
    "[size, dim] with the batch's dim",
  )
  n, size = embeddings.shape[0], memory.embeddings.shape[0]
  stored = jax.lax.stop_gradient(memory.embeddings).astype(embeddings.dtype)
  memory_labels = jax.lax.stop_gradient(memory.labels)
  candidate_labels = (
    memory_labels
    if labels is None
    else jnp.concatenate([labels, memory_labels.astype(labels.dtype)])
  )
  own = jnp.concatenate(
    [jnp.eye(n, dtype=bool), jnp.zeros((n, size), bool)], axis=1
  )
  return References(
    memory=stored,
    labels=candidate_labels,
    valid=jnp.concatenate([keep, memory.valid]),
    own=own,
  )


def cross_distances(x: jax.Array, y: jax.Array, distance: str) -> jax.Array:
  """``[n, m]`` distances from the rows of ``x`` to those of ``y``, computed
  as :func:`~jaxloss.metric_learning._distances.pairwise_distances` does
  (Gram form of ``x / s`` and ``y / s`` with ``s`` the largest magnitude of
  both, clamped at 0, safe square root; cosine: ``1 − cos``)."""
  if distance == "cosine":
    unit_x, unit_y = numerics.l2_normalize(x), numerics.l2_normalize(y)
    cosine = jnp.matmul(unit_x, unit_y.T, precision=jax.lax.Precision.HIGHEST)
    return jnp.maximum(1 - cosine, 0)
  peak = jnp.maximum(
    numerics.magnitude_scale(x, axis=None)[0, 0],
    numerics.magnitude_scale(y, axis=None)[0, 0],
  )
  x, y = x / peak, y / peak
  gram = jnp.matmul(x, y.T, precision=jax.lax.Precision.HIGHEST)
  squared = (
    jnp.sum(jnp.square(x), axis=-1)[:, None]
    + jnp.sum(jnp.square(y), axis=-1)[None, :]
    - 2 * gram
  )
  root = peak * numerics.safe_sqrt(jnp.maximum(squared, 0))
  return root if distance == "euclidean" else jnp.square(root)


__all__ = [
  "CrossBatchMemory",
  "cross_batch_memory",
  "update_cross_batch_memory",
]
