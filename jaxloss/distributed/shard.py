"""``shard``: a sharded loss wrapped in :func:`jax.shard_map`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss._core.ring import AxisName
from jaxloss.distributed import contrastive

# The losses `shard` accepts: every public loss of jaxloss.distributed.
LOSSES: tuple[Callable[..., jax.Array], ...] = tuple(
  getattr(module, name) for module in (contrastive,) for name in module.__all__
)


def shard(
  loss_fn: Callable[..., jax.Array],
  mesh: jax.sharding.Mesh,
  axis: AxisName = "data",
) -> Callable[..., jax.Array]:
  """Wraps one of this module's losses in :func:`jax.shard_map` over ``axis``.

  The returned function takes the loss's arguments as **global** arrays
  (sharded or not; under ``jit`` or eagerly) and passes the loss
  ``axis_name=axis``. Array arguments of rank ≥ 1 (embeddings, ``labels``,
  ``negatives``, ``where``, ``weights``) are split along axis 0 over
  ``axis``, so their leading sizes must be multiples of its size; scalar
  arrays (a learned temperature) are replicated; Python values (options,
  fixed hyper-parameters) are passed through. Other mesh axes (a model axis)
  see replicated inputs and are not used. On a mesh whose ``axis`` is
  ``Explicit`` the inputs are first ``jax.reshard``-ed to that layout.

  In a multi-process run (after :func:`jax.distributed.initialize`) the mesh
  must hold devices of every process (build it from ``jax.devices()``, not
  ``jax.local_devices()``: the loss is that of the global batch), and when
  called outside ``jit`` every array argument of rank ≥ 1 must be a global
  ``jax.Array`` (:func:`jax.make_array_from_process_local_data`), not a
  process-local NumPy or single-process array; both raise ``ValueError``
  naming the loss and the argument.

  Args:
    loss_fn: one of this module's losses.
    mesh: a :class:`jax.sharding.Mesh`.
    axis: the mesh axis (or tuple of axes) that the batch is sharded over.

  Returns:
    A function with ``loss_fn``'s signature, less ``axis_name``; it returns
    the replicated scalar loss (or the ``[batch, ...]`` per-example values,
    sharded over ``axis``, for ``reduction="none"``).

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> loss = jax.jit(jd.shard(jd.clip_loss, mesh))
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> loss(x, x, temperature=jnp.array(0.5))
  Array(0.12692809, dtype=float32)
  """
  if not any(loss_fn is fn for fn in LOSSES):
    raise ValueError(
      f"shard: loss_fn must be one of jaxloss.distributed's losses "
      f"({', '.join(fn.__name__ for fn in LOSSES)}), got {loss_fn!r}; the "
      "single-device losses of jaxloss do not communicate."
    )
  axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
  unknown = [a for a in axes if a not in mesh.axis_names]
  if unknown:
    raise ValueError(
      f"shard: axis {axis!r} is not an axis of the mesh "
      f"(axes {tuple(mesh.axis_names)})."
    )
  processes = jax.process_count()
  covered = {d.process_index for d in mesh.devices.flat}
  if len(covered) < processes:
    raise ValueError(
      f"shard({loss_fn.__name__}): mesh holds devices of process(es) "
      f"{sorted(covered)} only, of {processes} processes; the loss of the "
      "global batch needs every process's devices: build the mesh from "
      "jax.devices() (e.g. jax.make_mesh), not jax.local_devices()."
    )
  parameters = list(inspect.signature(loss_fn).parameters)
  axis_name = axes[0] if len(axes) == 1 else axes
  spec = jax.P(axis_name)
  devices = int(np.prod([mesh.shape[a] for a in axes]))
  types = dict(zip(mesh.axis_names, mesh.axis_types))
  explicit = all(types[a] == jax.sharding.AxisType.Explicit for a in axes)

  @functools.wraps(loss_fn)
  def sharded(*args, **kwargs):
    if "axis_name" in kwargs:
      raise ValueError(
        f"shard({loss_fn.__name__}): axis_name is set by shard "
        f"(axis={axis!r}); do not pass it."
      )
    names = [
      parameters[i] if i < len(parameters) else f"argument {i}"
      for i in range(len(args))
    ] + list(kwargs)
    values = list(args) + list(kwargs.values())
    is_array = [isinstance(v, (jax.Array, np.ndarray)) for v in values]
    arrays = [jnp.asarray(v) for v, a in zip(values, is_array) if a]
    specs = tuple(jax.P() if x.ndim == 0 else spec for x in arrays)
    if len(covered) > 1:
      for arg, v in zip(names, values):
        local = isinstance(v, np.ndarray) or (
          isinstance(v, jax.Array)
          and not isinstance(v, jax.core.Tracer)
          and v.is_fully_addressable
        )
        if local and np.ndim(v):
          raise ValueError(
            f"shard({loss_fn.__name__}): {arg} is a process-local array "
            f"({type(v).__name__}) but the mesh spans {len(covered)} "
            "processes; pass a global jax.Array sharded like the embeddings: "
            "jax.make_array_from_process_local_data(jax.NamedSharding(mesh, "
            f"jax.P({axis!r})), local_{arg})."
          )
    for arg, x in zip([n for n, a in zip(names, is_array) if a], arrays):
      if x.ndim and x.shape[0] % devices:
        raise ValueError(
          f"shard({loss_fn.__name__}): {arg} has {x.shape[0]} rows, not a "
          f"multiple of the {devices} devices of axis {axis!r}."
        )
    if explicit:
      arrays = [
        jax.reshard(x, jax.NamedSharding(mesh, s))
        for x, s in zip(arrays, specs)
      ]

    def local(*shards):
      it = iter(shards)
      full = [next(it) if a else v for v, a in zip(values, is_array)]
      return loss_fn(
        *full[: len(args)],
        axis_name=axis_name,
        **dict(zip(kwargs, full[len(args) :])),
      )

    out_specs = spec if kwargs.get("reduction", "mean") == "none" else jax.P()
    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=out_specs)(
      *arrays
    )

  return sharded


__all__ = ["shard"]
