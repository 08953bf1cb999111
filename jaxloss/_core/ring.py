"""Statistics of an in-batch logits matrix whose columns span the devices.

Inside ``jax.shard_map`` (or ``jax.pmap``) each device along ``axis_name``
holds a slice of the rows and the same-sized slice of the columns of a
``[global rows, global columns]`` logits matrix described by a ``chunk_fn``
(:mod:`jaxloss._core.online_softmax`). Both functions here return the
:class:`~jaxloss._core.online_softmax.Stats` of this device's rows over
**all** columns (``row_lse``, ``row_sums``) and of this device's columns over
**all** rows (``col_lse``), so they stand in for :func:`online_softmax.stats`
in :mod:`jaxloss._core.in_batch`:

* :func:`gather_stats` gathers the other devices' columns (and, for
  ``col_lse``, rows) with ``all_gather(tiled=True)``: ``rows × global``
  logits per device (chunked with ``chunk_size``), plain autodiff.
* :func:`ring_stats` passes the column blocks round a ring of devices with
  ``D − 1`` ``ppermute`` steps; each device folds each block it receives into
  its rows' online log-sum-exp, chunk by chunk, while the block carries its
  own columns' state. A :func:`jax.custom_vjp` re-runs the ring in the
  backward pass, recomputing each chunk, and the gradient of each block
  travels with it and is sent home at the end (Inf-CL: Wang et al., `Breaking
  the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss
  <https://arxiv.org/abs/2410.17243>`_, 2024; SigLIP's chunked loss: Zhai et
  al., `Sigmoid Loss for Language Image Pre-Training
  <https://arxiv.org/abs/2303.15343>`_, 2023). Temporary memory per device is
  O(rows × chunk + columns × dim), whatever the number of devices.

Every leaf of the local rows and columns is first made device-varying over
``axis_name`` (``jax.lax.pcast``): a replicated temperature then gets its
gradient summed over the devices by the transpose of that cast, and the
custom VJP's cotangents have the types of its inputs, as ``check_vma``
requires.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Literal, TypeVar

import jax
import jax.numpy as jnp

from jaxloss._core import checks, online_softmax
from jaxloss._core.chunking import ChunkSize
from jaxloss._core.online_softmax import ChunkFn, Stats

Strategy = Literal["ring", "all_gather"]
STRATEGIES: tuple[Strategy, ...] = ("ring", "all_gather")
AxisName = Hashable  # a mesh or pmap axis name, or a tuple of them
T = TypeVar("T")


def device_sum(x: T, axis_name: AxisName | None) -> T:
  """``x`` (an array or a pytree of them) summed over the devices along
  ``axis_name``; ``x`` itself for ``None`` (one device). The losses whose
  value is a batch statistic share one body between their one-device and
  sharded forms this way."""
  return x if axis_name is None else jax.lax.psum(x, axis_name)


def device_max(x: jax.Array, axis_name: AxisName | None) -> jax.Array:
  """``x``'s elementwise maximum over the devices along ``axis_name``;
  ``x`` itself for ``None``."""
  return x if axis_name is None else jax.lax.pmax(x, axis_name)


def axis_size(axis_name: AxisName) -> int:
  """The number of devices along ``axis_name``; a ``ValueError`` naming the
  loss when it is not bound (called outside ``shard_map``/``pmap``)."""
  try:
    return jax.lax.axis_size(axis_name)
  except NameError:
    raise checks.fail(
      f"axis_name={axis_name!r} is not a mapped axis here; call the loss "
      "inside jax.shard_map or jax.pmap over that axis (or wrap it with "
      "jaxloss.distributed.shard)."
    ) from None


def start_index(axis_name: AxisName, local_size: int) -> jax.Array:
  """The global index of this device's first example."""
  return jax.lax.axis_index(axis_name) * local_size


def stats_fn(
  strategy: str, axis_name: AxisName, chunk_size: ChunkSize
) -> Callable[..., Stats]:
  """The ``stats`` function of :mod:`jaxloss._core.in_batch` for a strategy."""
  fn = ring_stats if strategy == "ring" else gather_stats
  return functools.partial(fn, axis_name=axis_name, chunk_size=chunk_size)


def varying(tree, axis_name):
  """Every leaf of ``tree`` cast to device-varying over ``axis_name``."""
  axes = set(axis_name) if isinstance(axis_name, tuple) else {axis_name}

  def cast(x):
    x = jnp.asarray(x)
    missing = tuple(sorted(axes - _varying_axes(x)))
    return jax.lax.pcast(x, missing, to="varying") if missing else x

  return jax.tree.map(cast, tree)


def _varying_axes(x) -> frozenset:
  aval = jax.typeof(x)
  kind = getattr(aval, "manual_axis_type", None)
  if kind is not None:
    return frozenset(kind.varying)
  return frozenset(getattr(aval, "vma", ()))


# --------------------------------------------------------------------------- #
# all_gather


def gather_stats(
  chunk_fn: ChunkFn,
  rows,
  columns,
  *,
  axis_name,
  chunk_size: ChunkSize = None,
  row_lse: bool = True,
  col_lse: bool = False,
) -> Stats:
  """:class:`Stats` with the other devices' columns (and rows) gathered.

  Leaves of rank 0 in ``rows`` (a temperature, a bias) are shared, not
  gathered. Gradients flow back through ``all_gather`` by autodiff.
  """
  rows, columns = varying((rows, columns), axis_name)

  def gather(tree):
    return jax.tree.map(
      lambda x: (
        x if x.ndim == 0 else jax.lax.all_gather(x, axis_name, tiled=True)
      ),
      tree,
    )

  local = functools.partial(online_softmax.stats, chunk_size=chunk_size)
  result = local(chunk_fn, rows, gather(columns), row_lse=row_lse)
  col = None
  if col_lse:  # this device's columns against every row.
    col = local(
      chunk_fn, gather(rows), columns, row_lse=False, col_lse=True
    ).col_lse
  return Stats(result.row_lse, result.row_sums, col)


# --------------------------------------------------------------------------- #
# ring


def ring_stats(
  chunk_fn: ChunkFn,
  rows,
  columns,
  *,
  axis_name,
  chunk_size: ChunkSize = None,
  row_lse: bool = True,
  col_lse: bool = False,
) -> Stats:
  """:class:`Stats` with the column blocks passed round a ring of devices.

  Each device's columns are cut into chunks of ``chunk_size`` (the whole
  block when ``None``); only one ``[rows, chunk]`` block of logits exists at
  a time, in the forward and in the backward pass. Reverse-mode
  differentiation only (a custom VJP).
  """
  rows, columns = varying((rows, columns), axis_name)
  num_columns = max(jax.tree.leaves(columns)[0].shape[0], 1)
  chunk = online_softmax.resolve_chunk_size(chunk_size, chunk_fn, rows, columns)
  chunk = min(chunk or num_columns, num_columns)  # no idle padding.
  blocked = online_softmax.Blocked.build(chunk_fn, rows, columns, chunk)
  devices = axis_size(axis_name)
  shift = functools.partial(_shift, axis_name=axis_name, devices=devices)
  options = dict(row_lse=row_lse, col_lse=col_lse)

  # Traced leaves are arguments, not closed over: a custom VJP may not close
  # over traced values.
  def forward(row_float, row_other, col_float, col_other, valid):
    problem = blocked._replace(row_other=row_other, valid=valid)
    row, sums, col = problem.forward(row_float, col_float, col_other, **options)

    def step(carry, _):  # receive the next block; fold it in.
      row, sums, (cf, co, col) = carry
      cf, co, col = shift((cf, co, col))
      r, s, c = problem.forward(row_float, cf, co, **options)
      return (
        _merge(row, r),
        jax.tree.map(jnp.add, sums, s),
        (cf, co, _merge(col, c)),
      ), None

    (row, sums, (_, _, col)), _ = jax.lax.scan(
      step, (row, sums, (col_float, col_other, col)), length=devices - 1
    )
    return row, sums, shift(col)  # the columns' state goes home.

  @jax.custom_vjp
  def ring(row_float, row_other, col_float, col_other, valid):
    return online_softmax.finish_stats(
      *forward(row_float, row_other, col_float, col_other, valid)
    )

  def ring_fwd(row_float, row_other, col_float, col_other, valid):
    row, sums, col = forward(row_float, row_other, col_float, col_other, valid)
    residuals = (row_float, row_other, col_float, col_other, valid, row, col)
    return online_softmax.finish_stats(row, sums, col), residuals

  def ring_bwd(residuals, cotangents):
    row_float, row_other, col_float, col_other, valid, row, col = residuals
    g_row, g_sums, g_col = cotangents
    problem = blocked._replace(row_other=row_other, valid=valid)
    d_row, d_col = problem.backward(
      row_float, col_float, col_other, row, col, g_row, g_sums, g_col
    )

    def step(carry, _):  # receive the next block with its gradient so far.
      d_row, (cf, co, c, g_c, d_c) = carry
      cf, co, c, g_c, d_c = shift((cf, co, c, g_c, d_c))
      d_r, d_cn = problem.backward(
        row_float, cf, co, row, c, g_row, g_sums, g_c
      )
      return (
        jax.tree.map(jnp.add, d_row, d_r),
        (cf, co, c, g_c, jax.tree.map(jnp.add, d_c, d_cn)),
      ), None

    travelling = (col_float, col_other, col, g_col, d_col)
    (d_row, (*_, d_col)), _ = jax.lax.scan(
      step, (d_row, travelling), length=devices - 1
    )
    return blocked.cotangents(d_row, shift(d_col))

  ring.defvjp(ring_fwd, ring_bwd)
  return blocked.run(ring)


def _shift(tree, *, axis_name, devices: int):
  """Sends ``tree`` one step round the ring: device ``i`` to ``i + 1``."""
  if devices == 1 or tree is None:
    return tree
  return jax.lax.ppermute(
    tree, axis_name, [(i, (i + 1) % devices) for i in range(devices)]
  )


def _merge(
  a: online_softmax.LseState | None, b: online_softmax.LseState | None
) -> online_softmax.LseState | None:
  """The union of two states, or ``None`` (a log-sum-exp not asked for)."""
  return None if a is None or b is None else online_softmax.merge(a, b)
