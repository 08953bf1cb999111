"""Row-wise log-sum-exp over column chunks, without the full logits matrix.

A loss whose logits form a ``[rows, columns]`` matrix (in-batch contrastive
similarities, vocabulary logits) describes one column chunk of that matrix
with a ``chunk_fn`` and gets back :class:`Stats`: per row, the log-sum-exp over
the unmasked columns and the sums of any elementwise terms; per column, the
log-sum-exp over the rows. Selected logits (a positive pair's similarity, a
label's logit) are terms: the row sum of ``where(selected, logits, 0)``.

* :func:`dense` computes the statistics from the whole matrix with plain
  autodiff: the reference, and the fast path for small matrices.
* :func:`chunked` scans over column chunks with an online log-sum-exp
  (Milakov and Gimelshein, `Online normalizer calculation for softmax
  <https://arxiv.org/abs/1805.02867>`_, 2018) and a :func:`jax.custom_vjp`
  whose backward pass recomputes each chunk, so the temporary memory is
  O(rows × chunk). Value and gradients equal :func:`dense`'s.

``chunk_fn(rows, columns) -> Chunk`` receives ``rows``, a pytree of arrays
that is the same for every chunk (row embeddings, a temperature, row masks),
and ``columns``, a pytree of arrays whose axis 0 runs over one chunk of
columns. It must be a pure function of its arguments: anything traced (a
learned temperature, a mask) goes in ``rows`` or ``columns``, not in a
closure. Floating leaves are differentiated; integer and boolean leaves
(labels, indices, masks) are not.

:func:`init`, :func:`update`, :func:`merge`, :func:`finish` and
:func:`softmax_cotangent` are the online log-sum-exp itself, for callers that
run their own loop (e.g. over the devices of a ring).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxloss._core import chunking, numerics
from jaxloss._core.chunking import ChunkSize


class Chunk(NamedTuple):
  """One column chunk of the logits, as ``chunk_fn`` returns it.

  Attributes:
    logits: ``[rows, chunk]`` logits.
    mask: optional boolean mask broadcastable to ``logits``; ``False`` entries
      take no part in either log-sum-exp.
    terms: a pytree of ``[rows, chunk]`` arrays whose row sums are wanted
      (masking them is ``chunk_fn``'s job; padding columns are dropped here).
  """

  logits: jax.Array
  mask: jax.Array | None = None
  terms: Any = ()


class Stats(NamedTuple):
  """Row and column statistics of the full logits matrix.

  Attributes:
    row_lse: ``[rows]`` log-sum-exp over each row's unmasked entries (0 for a
      row with none, with a zero gradient), or ``None`` if not asked for.
    row_sums: ``Chunk.terms``' pytree, each leaf summed over the columns:
      ``[rows]``.
    col_lse: ``[columns]`` log-sum-exp over each column's unmasked entries
      (0 for a column with none), or ``None`` if not asked for.
  """

  row_lse: jax.Array | None
  row_sums: Any
  col_lse: jax.Array | None


ChunkFn = Callable[[Any, Any], Chunk]


# --------------------------------------------------------------------------- #
# masked and online log-sum-exp


class LseState(NamedTuple):
  """Running ``(max, sum of exp(x - max))`` of an online log-sum-exp."""

  peak: jax.Array
  total: jax.Array


def init(shape, dtype) -> LseState:
  """The state of an empty log-sum-exp of the given shape."""
  return LseState(jnp.full(shape, -jnp.inf, dtype), jnp.zeros(shape, dtype))


def update(
  state: LseState, logits: jax.Array, mask: jax.Array, axis: int = -1
) -> LseState:
  """Folds the unmasked entries of ``logits`` along ``axis`` into ``state``."""
  filled = jnp.where(mask, logits, -jnp.inf)
  peak = jnp.maximum(state.peak, jnp.max(filled, axis=axis))
  shift = jnp.where(jnp.isfinite(peak), peak, 0)
  total = state.total * jnp.exp(state.peak - shift) + jnp.sum(
    jnp.exp(filled - jnp.expand_dims(shift, axis)), axis=axis
  )
  return LseState(peak, total)


def merge(a: LseState, b: LseState) -> LseState:
  """The state of the union of two sets of entries."""
  peak = jnp.maximum(a.peak, b.peak)
  shift = jnp.where(jnp.isfinite(peak), peak, 0)
  return LseState(
    peak, a.total * jnp.exp(a.peak - shift) + b.total * jnp.exp(b.peak - shift)
  )


def finish(state: LseState) -> jax.Array:
  """The log-sum-exp of the entries folded in; 0 where there were none."""
  nonempty = state.total > 0
  return jnp.where(
    nonempty, jnp.log(jnp.where(nonempty, state.total, 1)) + state.peak, 0
  )


def softmax_cotangent(
  logits: jax.Array, mask: jax.Array, state: LseState, cotangent: jax.Array
) -> jax.Array:
  """``cotangent · ∂lse/∂logits = cotangent · softmax`` over unmasked entries.

  ``state`` (the log-sum-exp's final :class:`LseState`) and ``cotangent``
  broadcast against ``logits`` (``[rows, 1]`` for a row log-sum-exp, ``[1,
  chunk]`` for a column one). The softmax is ``exp(x - max) / total``, not
  ``exp(x - lse)``: rounding ``lse`` to the logits' precision would put its
  error, relative to the size of the logits, on every probability.
  """
  shift = jnp.where(jnp.isfinite(state.peak), state.peak, 0)
  total = jnp.where(state.total > 0, state.total, 1)
  return cotangent * jnp.exp(jnp.where(mask, logits - shift, -jnp.inf)) / total


# --------------------------------------------------------------------------- #
# the two paths


def dense(
  chunk_fn: ChunkFn,
  rows,
  columns,
  *,
  row_lse: bool = True,
  col_lse: bool = False,
) -> Stats:
  """:class:`Stats` from the whole ``[rows, columns]`` matrix (autodiff)."""
  chunk = chunk_fn(rows, columns)
  mask = _full_mask(chunk, None)
  return Stats(
    numerics.masked_logsumexp(chunk.logits, mask, axis=1) if row_lse else None,
    jax.tree.map(lambda t: jnp.sum(t, axis=1), chunk.terms),
    numerics.masked_logsumexp(chunk.logits, mask, axis=0) if col_lse else None,
  )


def chunked(
  chunk_fn: ChunkFn,
  rows,
  columns,
  *,
  chunk_size: int,
  row_lse: bool = True,
  col_lse: bool = False,
) -> Stats:
  """:class:`Stats` computed ``chunk_size`` columns at a time.

  Same value and gradients as :func:`dense`, but only one ``[rows,
  chunk_size]`` block of logits exists at a time, in the forward and in the
  backward pass (which recomputes each block). The last chunk is padded and
  its padding masked. Reverse-mode differentiation only (a custom VJP).
  """
  blocked = Blocked.build(chunk_fn, rows, columns, chunk_size)

  # The integer and boolean leaves are arguments, not closed over: a custom
  # VJP may not close over traced values.
  @jax.custom_vjp
  def scan(row_float, row_other, col_float, col_other, valid):
    problem = blocked._replace(row_other=row_other, valid=valid)
    return finish_stats(
      *problem.forward(
        row_float, col_float, col_other, row_lse=row_lse, col_lse=col_lse
      )
    )

  def scan_fwd(row_float, row_other, col_float, col_other, valid):
    problem = blocked._replace(row_other=row_other, valid=valid)
    row, sums, col = problem.forward(
      row_float, col_float, col_other, row_lse=row_lse, col_lse=col_lse
    )
    residuals = (row_float, row_other, col_float, col_other, valid, row, col)
    return finish_stats(row, sums, col), residuals

  def scan_bwd(residuals, cotangents):
    row_float, row_other, col_float, col_other, valid, row, col = residuals
    problem = blocked._replace(row_other=row_other, valid=valid)
    d_row, d_col = problem.backward(
      row_float, col_float, col_other, row, col, *cotangents
    )
    return blocked.cotangents(d_row, d_col)

  scan.defvjp(scan_fwd, scan_bwd)
  return blocked.run(scan)


def stats(
  chunk_fn: ChunkFn,
  rows,
  columns,
  *,
  chunk_size: ChunkSize = None,
  row_lse: bool = True,
  col_lse: bool = False,
) -> Stats:
  """:func:`dense` when ``chunk_size`` is ``None``, else :func:`chunked`;
  ``"auto"`` picks one by :func:`jaxloss._core.chunking.auto_chunk_size`."""
  empty = _leading_size(columns) == 0 or any(
    x.ndim > 0 and x.shape[0] == 0 for x in jax.tree.leaves(rows)
  )
  # An empty batch: the (empty) dense matrix.
  size = (
    None if empty else resolve_chunk_size(chunk_size, chunk_fn, rows, columns)
  )
  if size is None:
    return dense(chunk_fn, rows, columns, row_lse=row_lse, col_lse=col_lse)
  return chunked(
    chunk_fn,
    rows,
    columns,
    chunk_size=size,
    row_lse=row_lse,
    col_lse=col_lse,
  )


def resolve_chunk_size(
  chunk_size: ChunkSize, chunk_fn: ChunkFn, rows, columns
) -> int | None:
  """``chunk_size``, with ``"auto"`` resolved from the shape and dtype of the
  ``[rows, columns]`` logits that ``chunk_fn`` describes."""
  if not isinstance(chunk_size, str):
    return chunk_size
  first = jax.tree.map(lambda x: x[:1], columns)
  logits = jax.eval_shape(chunk_fn, rows, first).logits
  return chunking.auto_chunk_size(
    logits.shape[0], _leading_size(columns), logits.dtype
  )


# --------------------------------------------------------------------------- #
# the scan over column chunks, forward and backward


def finish_stats(row: LseState | None, sums, col: LseState | None):
  """``(row_lse, row_sums, col_lse)`` from the running states."""
  return (
    None if row is None else finish(row),
    sums,
    None if col is None else finish(col),
  )


class Blocked(NamedTuple):
  """A chunk function with its rows and its columns cut into chunks.

  The pytrees are split into floating leaves (differentiated) and other
  leaves; the columns are padded to ``[num_chunks, chunk_size, ...]`` with
  ``valid`` marking the real ones. :meth:`forward` and :meth:`backward` scan
  over the chunks of the columns given as ``col_float``/``col_other`` (this
  device's, or a block travelling round a ring of devices,
  :mod:`jaxloss._core.ring`).
  """

  chunk_fn: ChunkFn
  row_float: list
  row_other: list
  row_def: Any
  col_float: list
  col_other: list
  col_def: Any
  valid: jax.Array
  num_columns: int

  @classmethod
  def build(cls, chunk_fn: ChunkFn, rows, columns, chunk_size: int) -> Blocked:
    num_columns = _leading_size(columns)
    num_chunks = max(-(-num_columns // chunk_size), 1)
    padded = num_chunks * chunk_size
    blocks = jax.tree.map(
      lambda x: jnp.pad(
        x, [(0, padded - num_columns)] + [(0, 0)] * (x.ndim - 1)
      ).reshape((num_chunks, chunk_size) + x.shape[1:]),
      columns,
    )
    valid = (jnp.arange(padded) < num_columns).reshape(num_chunks, chunk_size)
    row_float, row_other, row_def = _split(rows)
    col_float, col_other, col_def = _split(blocks)
    return cls(
      chunk_fn,
      row_float,
      row_other,
      row_def,
      col_float,
      col_other,
      col_def,
      valid,
      num_columns,
    )

  def unblock(self, col: jax.Array | None) -> jax.Array | None:
    """``[num_chunks, chunk]`` column values back to ``[columns]``."""
    return None if col is None else col.reshape(-1)[: self.num_columns]

  def run(self, custom: Callable[..., Any]) -> Stats:
    """:class:`Stats` of ``custom(row_float, row_other, col_float, col_other,
    valid) -> (row_lse, row_sums, blocked col_lse)`` on these blocks (a
    :func:`jax.custom_vjp` takes the traced leaves as arguments: it may not
    close over them)."""
    row, sums, col = custom(
      self.row_float, self.row_other, self.col_float, self.col_other, self.valid
    )
    return Stats(row, sums, self.unblock(col))

  def cotangents(self, d_row: list, d_col: list) -> tuple:
    """The cotangents of :meth:`run`'s five inputs: only the floating
    leaves have any."""
    return (
      d_row,
      [None] * len(self.row_other),
      d_col,
      [None] * len(self.col_other),
      None,
    )

  def call(self, row_float, col_float, col_other) -> Chunk:
    return self.chunk_fn(
      _join(self.row_def, row_float, self.row_other),
      _join(self.col_def, col_float, col_other),
    )

  def forward(
    self, row_float, col_float, col_other, *, row_lse: bool, col_lse: bool
  ):
    """Scans the column chunks.

    Returns:
      ``(row, sums, col)``: the rows' :class:`LseState` (``None`` unless
      ``row_lse``), the row sums of the terms, and the columns' stacked
      ``[num_chunks, chunk]`` :class:`LseState` (``None`` unless ``col_lse``).
    """
    first = jax.tree.map(lambda x: x[0], (col_float, col_other))
    shapes = jax.eval_shape(lambda cf, co: self.call(row_float, cf, co), *first)
    num_rows, dtype = shapes.logits.shape[0], shapes.logits.dtype
    zero = _zero(row_float, col_float, dtype)
    sums0 = jax.tree.map(
      lambda t: jnp.zeros(t.shape[:1], t.dtype) + zero, shapes.terms
    )

    def step(carry, block):
      state, sums = carry
      cf, co, pad = block
      chunk = self.call(row_float, cf, co)
      mask = _full_mask(chunk, pad)
      if row_lse:
        state = update(state, chunk.logits, mask, axis=1)
      sums = jax.tree.map(
        lambda s, t: s + jnp.sum(jnp.where(pad[None, :], t, 0), axis=1),
        sums,
        chunk.terms,
      )
      col = (
        update(init(pad.shape, dtype), chunk.logits, mask, axis=0)
        if col_lse
        else None
      )
      return (state, sums), col

    state0 = jax.tree.map(lambda x: x + zero, init((num_rows,), dtype))
    (state, sums), col = jax.lax.scan(
      step, (state0, sums0), (col_float, col_other, self.valid)
    )
    return (state if row_lse else None), sums, col

  def backward(
    self, row_float, col_float, col_other, row, col, g_row, g_sums, g_col
  ):
    """Gradients ``(d_row_float, d_col_float)`` of the statistics.

    ``row`` and ``col`` are the final :class:`LseState` of every row and of
    these columns (``[num_chunks, chunk]``); ``g_row``, ``g_sums`` and
    ``g_col`` the cotangents of :func:`finish_stats`' outputs.
    """
    row_lse, col_lse = row is not None, col is not None

    def step(acc, block):
      cf, co, pad, g_c, col_c = block

      def differentiable(rf, cf):
        chunk = self.call(rf, cf, co)
        return (chunk.logits, chunk.terms), chunk.mask

      (logits, terms), pull, mask = jax.vjp(
        differentiable, row_float, cf, has_aux=True
      )
      mask = _full_mask(Chunk(logits, mask), pad)
      ct_logits = jnp.zeros_like(logits)
      if row_lse:
        ct_logits += softmax_cotangent(
          logits, mask, jax.tree.map(lambda r: r[:, None], row), g_row[:, None]
        )
      if col_lse:
        ct_logits += softmax_cotangent(
          logits, mask, jax.tree.map(lambda c: c[None, :], col_c), g_c[None, :]
        )
      ct_terms = jax.tree.map(
        lambda g, t: jnp.broadcast_to(
          jnp.where(pad[None, :], g[:, None], 0), t.shape
        ).astype(t.dtype),
        g_sums,
        terms,
      )
      d_row, d_col = pull((ct_logits, ct_terms))
      return jax.tree.map(jnp.add, acc, d_row), d_col

    acc0 = jax.tree.map(
      lambda x: jnp.zeros_like(x) + _zero(row_float, col_float, x.dtype),
      row_float,
    )
    blocks = (
      col_float,
      col_other,
      self.valid,
      *((g_col, col) if col_lse else (self.valid, self.valid)),
    )  # dummies
    return jax.lax.scan(step, acc0, blocks)


def _zero(row_float, col_float, dtype) -> jax.Array:
  """A scalar 0 that varies over every mesh axis any input varies over.

  Inside ``shard_map`` a scan's carry must have the type of the scan body's
  output; starting the carries from ``x + 0`` with this zero gives them the
  inputs' device-varying type. Outside ``shard_map`` it is a plain 0.
  """
  zero = jnp.zeros((), dtype)
  for leaf in jax.tree.leaves((row_float, col_float)):
    zero = zero + jnp.zeros_like(leaf, dtype=dtype, shape=())
  return zero


# --------------------------------------------------------------------------- #
# pytree plumbing


def _full_mask(chunk: Chunk, pad: jax.Array | None) -> jax.Array:
  """``chunk.mask`` broadcast to the logits' shape, and the padding dropped."""
  shape = chunk.logits.shape
  mask = (
    jnp.ones(shape, bool)
    if chunk.mask is None
    else jnp.broadcast_to(chunk.mask, shape)
  )
  return mask if pad is None else mask & pad[None, :]


def _leading_size(columns) -> int:
  sizes = {x.shape[0] for x in jax.tree.leaves(columns)}
  if len(sizes) != 1:
    raise ValueError(
      f"online_softmax: column leaves must share axis 0, got "
      f"sizes {sorted(sizes)}."
    )
  return sizes.pop()


def _split(tree):
  """``(floating leaves, other leaves, (treedef, which leaves float))``."""
  leaves, treedef = jax.tree.flatten(tree)
  is_float = [jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact) for x in leaves]
  floats = [jnp.asarray(x) for x, f in zip(leaves, is_float) if f]
  others = [jnp.asarray(x) for x, f in zip(leaves, is_float) if not f]
  return floats, others, (treedef, is_float)


def _join(definition, floats, others):
  treedef, is_float = definition
  floats, others = iter(floats), iter(others)
  return jax.tree.unflatten(
    treedef, [next(floats) if f else next(others) for f in is_float]
  )
