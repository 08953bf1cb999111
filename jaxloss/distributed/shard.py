"""``shard``: a sharded loss wrapped in :func:`jax.shard_map`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss._core.ring import AxisName
from jaxloss.distributed import (
  clustering,
  contrastive,
  linear,
  policy,
  preference,
  routing,
  self_supervised,
)

# The losses `shard` accepts: the batch-sharded losses (`axis_name`) and the
# vocabulary-parallel ones.
CONTRASTIVE: tuple[Callable[..., jax.Array], ...] = tuple(
  getattr(contrastive, name) for name in contrastive.__all__
)
CLUSTERING: tuple[Callable[..., Any], ...] = tuple(
  getattr(clustering, name) for name in clustering.__all__
)
# Barlow Twins and VICReg: every array split on axis 0 too.
SELF_SUPERVISED: tuple[Callable[..., jax.Array], ...] = tuple(
  getattr(self_supervised, name) for name in self_supervised.__all__
)
# The router losses: the tokens on axis 0 of [tokens, E] inputs (with leading
# group axes, name the token axis in batch_axes).
ROUTING: tuple[Callable[..., jax.Array], ...] = tuple(
  getattr(routing, name) for name in routing.__all__
)
# KTO and GRPO: every array (per example, or per completion token) on axis 0.
POST_TRAINING: tuple[Callable[..., jax.Array], ...] = (
  preference.kto_loss,
  policy.grpo_loss,
)
BATCH_SHARDED = (
  CONTRASTIVE + SELF_SUPERVISED + CLUSTERING + ROUTING + POST_TRAINING
)
VOCAB_PARALLEL: tuple[Callable[..., jax.Array], ...] = tuple(
  getattr(linear, name) for name in linear.__all__
)
LOSSES = BATCH_SHARDED + VOCAB_PARALLEL
# A batch-sharded loss's arguments whose batch is not on axis 0: the axis
# that holds it, or None for an argument replicated on every device (every
# other array argument of rank >= 1 is split on axis 0, a scalar replicated).
BATCH_AXES: dict[Callable[..., Any], dict[str, int | None]] = {
  clustering.dino_loss: {
    "student_logits": 1,
    "teacher_logits": 1,
    "center": None,
  },
}
# Losses that return a tuple: the loss, then outputs replicated on every
# device (DINO's new centre), how many.
REPLICATED_OUTPUTS = {clustering.dino_loss: 1}
# The vocabulary-parallel losses' arguments split on the vocabulary (the
# weight on its axis 1, bias and class weights on axis 0), and their token
# arguments (split on axis 0 over `axis`).
VOCAB_ARGS = {"weight": 1, "bias": 0, "class_weights": 0}
TOKEN_ARGS = ("hidden", "labels", "where", "weights")


def _as_tuple(axis) -> tuple:
  if axis is None:
    return ()
  return tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)


def _name(axes: tuple):
  """A mesh-axis argument: ``None``, one name or a tuple of names."""
  return None if not axes else axes[0] if len(axes) == 1 else axes


def shard(
  loss_fn: Callable[..., jax.Array],
  mesh: jax.sharding.Mesh,
  axis: AxisName | None = "data",
  vocab_axis: AxisName | None = None,
  *,
  batch_axes: Mapping[str, int | None] | None = None,
) -> Callable[..., jax.Array]:
  """Wraps one of this module's losses in :func:`jax.shard_map`.

  The returned function takes the loss's arguments as **global** arrays
  (sharded or not; under ``jit`` or eagerly). Python values (options, fixed
  hyper-parameters) are passed through, scalar arrays (a learned
  temperature) are replicated. On a mesh whose axes are ``Explicit`` the
  inputs are first ``jax.reshard``-ed to the layout below.

  **Batch-sharded losses** (:func:`clip_loss`, :func:`siglip_loss`, ...,
  :func:`dino_loss`, :func:`swav_loss`) get ``axis_name=axis``: each array
  argument is split over ``axis`` along the axis that holds its batch, so
  that axis's size must be a multiple of the size of ``axis``; scalars are
  replicated. The batch is on axis 0 (embeddings, ``labels``,
  ``negatives``, ``where``, ``weights``) but for :func:`dino_loss`, whose
  logits are ``[views, batch, K]`` (axis 1) and whose ``center`` is
  replicated. ``batch_axes`` overrides or adds to this, argument by
  argument: ``batch_axes={"center": None}`` replicates ``center``,
  ``{"student_logits": 1}`` splits it on axis 1 (the loss must expect that
  argument's local slice, or the whole array for ``None``). Other mesh axes
  (a model axis) see replicated inputs and are not used. The router losses
  (:func:`load_balancing_loss`, :func:`router_z_loss`) split their tokens:
  axis 0 of ``[tokens, E]`` inputs; with leading group axes name the token
  axis, e.g. ``batch_axes={"router_probs": 1, "expert_indices": 1,
  "where": 1}`` for ``[groups, tokens, ...]``. :func:`kto_loss` and
  :func:`grpo_loss` split every array on axis 0 (the examples, or the
  completions of ``[batch, tokens]`` log-probabilities).

  **Vocabulary-parallel losses** (:func:`linear_cross_entropy`,
  :func:`linear_log_probs`) get ``vocab_axis=vocab_axis`` and
  ``token_axis=axis``, with per-argument specs: ``weight`` ``[dim, V]`` is
  split on its columns (``P(None, vocab_axis)``), ``bias`` and
  ``class_weights`` ``[V]`` on theirs (``P(vocab_axis)``); the tokens
  (``hidden``, ``labels``, and ``where`` and ``weights`` when they have
  ``labels``' leading size; smaller ones broadcast and are replicated) on
  their leading axis over ``axis`` (``axis=None``: every device holds every
  token). ``V`` must be a multiple of the size of ``vocab_axis`` and the
  tokens' leading size of that of ``axis``. A tied embedding ``[V, dim]``
  sharded ``P(vocab_axis, None)`` is passed as ``weight=embedding.T``: it
  is already ``P(None, vocab_axis)``, nothing moves.

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
    axis: the mesh axis (or tuple of axes) that the batch is sharded over
      (vocabulary-parallel losses: the tokens' axis, or ``None`` for tokens
      replicated on every device).
    vocab_axis: the mesh axis (or tuple) of the vocabulary, for the
      vocabulary-parallel losses only.
    batch_axes: batch-sharded losses only: argument name to the axis of that
      argument that holds the batch (split over ``axis``), or ``None`` for
      an argument replicated on every device; merged over the loss's own
      layout (above).

  Returns:
    A function with ``loss_fn``'s signature, less ``axis_name`` (or
    ``vocab_axis`` and ``token_axis``); it returns the replicated scalar
    loss, or the per-example (per-token) values sharded over ``axis`` on
    their leading axis for ``reduction="none"`` and for
    :func:`linear_log_probs`; :func:`dino_loss`'s new centre is replicated.

  Raises:
    ValueError: naming the loss, for a loss that is not of this module, an
      axis not in the mesh, a vocabulary not divisible by the size of
      ``vocab_axis``, a batch (tokens) not divisible by that of ``axis``,
      a ``batch_axes`` entry that is not an argument of the loss or not an
      axis of the array.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> loss = jax.jit(jd.shard(jd.clip_loss, mesh))
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> loss(x, x, temperature=jnp.array(0.5))
  Array(0.12692809, dtype=float32)

  A vocabulary-parallel loss on a ``data × model`` mesh (here ``1 × 1``):

  >>> mesh = jax.make_mesh((1, 1), ("data", "model"))
  >>> ce = jax.jit(jd.shard(jd.linear_cross_entropy, mesh, axis="data",
  ...                       vocab_axis="model"))
  >>> hidden = jnp.sin(jnp.arange(48.0)).reshape(6, 8)
  >>> weight = jnp.cos(jnp.arange(80.0)).reshape(8, 10)
  >>> print(f"{ce(hidden, weight, jnp.array([1, 2, 3, 4, 5, -100])):.4f}")
  2.2450
  """
  if not any(loss_fn is fn for fn in LOSSES):
    raise ValueError(
      f"shard: loss_fn must be one of jaxloss.distributed's losses "
      f"({', '.join(fn.__name__ for fn in LOSSES)}), got {loss_fn!r}; the "
      "single-device losses of jaxloss do not communicate."
    )
  name = loss_fn.__name__
  vocab_parallel = any(loss_fn is fn for fn in VOCAB_PARALLEL)
  axes, vocab_axes = _as_tuple(axis), _as_tuple(vocab_axis)
  if vocab_parallel and not vocab_axes:
    raise ValueError(
      f"shard({name}): pass vocab_axis=, the mesh axis that the vocabulary "
      "(the weight's columns) is sharded over."
    )
  if not vocab_parallel and (vocab_axes or not axes):
    raise ValueError(
      f"shard({name}): a batch-sharded loss (contrastive, self-supervised, "
      "routing, KTO, GRPO) "
      "takes axis= (the batch's mesh "
      f"axis) and no vocab_axis (got axis={axis!r}, "
      f"vocab_axis={vocab_axis!r})."
    )
  for label, given, named in (
    ("axis", axis, axes),
    ("vocab_axis", vocab_axis, vocab_axes),
  ):
    if any(a not in mesh.axis_names for a in named):
      raise ValueError(
        f"shard: {label} {given!r} is not an axis of the mesh "
        f"(axes {tuple(mesh.axis_names)})."
      )
  own_axes = dict(BATCH_AXES.get(loss_fn, {}))
  if batch_axes is not None:
    if vocab_parallel:
      raise ValueError(
        f"shard({name}): batch_axes is for the batch-sharded losses; a "
        "vocabulary-parallel loss's layout is fixed (vocab_axis, axis)."
      )
    known = set(inspect.signature(loss_fn).parameters)
    for arg, where in batch_axes.items():
      if arg not in known or arg == "axis_name":
        raise ValueError(
          f"shard({name}): batch_axes names {arg!r}, not an argument of "
          f"the loss ({', '.join(sorted(known - {'axis_name'}))})."
        )
      if where is not None and (
        not isinstance(where, int) or isinstance(where, bool) or where < 0
      ):
        raise ValueError(
          f"shard({name}): batch_axes[{arg!r}] must be a non-negative int "
          f"(the axis holding the batch) or None (replicated), got {where!r}."
        )
    own_axes.update(batch_axes)
  if set(axes) & set(vocab_axes):
    raise ValueError(
      f"shard({name}): axis={axis!r} and vocab_axis={vocab_axis!r} share a "
      "mesh axis; the tokens and the vocabulary are sharded over different "
      "axes."
    )
  processes = jax.process_count()
  covered = {d.process_index for d in mesh.devices.flat}
  if len(covered) < processes:
    raise ValueError(
      f"shard({name}): mesh holds devices of process(es) "
      f"{sorted(covered)} only, of {processes} processes; the loss of the "
      "global batch needs every process's devices: build the mesh from "
      "jax.devices() (e.g. jax.make_mesh), not jax.local_devices()."
    )
  parameters = list(inspect.signature(loss_fn).parameters)
  axis_name, vocab_name = _name(axes), _name(vocab_axes)
  spec = jax.P(axis_name)
  devices = int(np.prod([mesh.shape[a] for a in axes]))
  vocab_devices = int(np.prod([mesh.shape[a] for a in vocab_axes]))
  types = dict(zip(mesh.axis_names, mesh.axis_types))
  explicit = all(
    types[a] == jax.sharding.AxisType.Explicit for a in axes + vocab_axes
  )
  if vocab_parallel:
    passed = dict(vocab_axis=vocab_name, token_axis=axis_name)
    about = f"axis={axis!r}, vocab_axis={vocab_axis!r}"
  else:
    passed = dict(axis_name=axis_name)
    about = f"axis={axis!r}"

  def batch_spec(arg, x):
    """A batch-sharded loss's argument: split over ``axis`` on the axis
    that holds its batch (0 unless ``own_axes`` says otherwise)."""
    at = own_axes.get(arg, 0 if x.ndim else None)
    if at is None:
      return jax.P()
    if at >= x.ndim:
      raise ValueError(
        f"shard({name}): {arg} of shape {x.shape} has no axis {at} to "
        f"split over axis {axis!r} (batch_axes)."
      )
    if x.shape[at] % devices:
      where = "rows" if at == 0 else f"entries on its axis {at} (the batch)"
      raise ValueError(
        f"shard({name}): {arg} has {x.shape[at]} {where}, not a "
        f"multiple of the {devices} devices of axis {axis!r}."
      )
    return jax.P(*[None] * at, axis_name)

  def vocab_parallel_specs(arrays: dict) -> dict:
    """A vocabulary-parallel loss's specs, argument by argument."""
    labels = arrays.get("labels")
    tokens = labels.shape[0] if labels is not None and labels.ndim else None
    specs = {}
    for arg, x in arrays.items():
      if arg in VOCAB_ARGS and x.ndim > VOCAB_ARGS[arg]:
        vocab = x.shape[VOCAB_ARGS[arg]]
        if vocab % vocab_devices:
          raise ValueError(
            f"shard({name}): {arg} has a vocabulary of {vocab}, not a "
            f"multiple of the {vocab_devices} devices of vocab_axis "
            f"{vocab_axis!r}; pad the vocabulary (e.g. to a multiple of "
            f"{vocab_devices * 128}), giving the padded columns a large "
            "negative bias."
          )
        specs[arg] = jax.P(*[None] * VOCAB_ARGS[arg], vocab_name)
      elif (
        arg in TOKEN_ARGS
        and axes
        and x.ndim
        and (arg in ("hidden", "labels") or x.shape[0] == tokens)
      ):
        if x.shape[0] % devices:
          raise ValueError(
            f"shard({name}): {arg} has {x.shape[0]} rows of tokens, not a "
            f"multiple of the {devices} devices of axis {axis!r}."
          )
        specs[arg] = spec
      else:  # scalars; masks and weights that broadcast over the tokens.
        specs[arg] = jax.P()
    return specs

  @functools.wraps(loss_fn)
  def sharded(*args, **kwargs):
    for key in passed:
      if key in kwargs:
        raise ValueError(
          f"shard({name}): {key} is set by shard ({about}); do not pass it."
        )
    names = [
      parameters[i] if i < len(parameters) else f"argument {i}"
      for i in range(len(args))
    ] + list(kwargs)
    values = list(args) + list(kwargs.values())
    is_array = [isinstance(v, (jax.Array, np.ndarray)) for v in values]
    arrays = [jnp.asarray(v) for v, a in zip(values, is_array) if a]
    array_names = [n for n, a in zip(names, is_array) if a]
    if len(covered) > 1:
      for arg, v in zip(names, values):
        local = isinstance(v, np.ndarray) or (
          isinstance(v, jax.Array)
          and not isinstance(v, jax.core.Tracer)
          and v.is_fully_addressable
        )
        at = own_axes.get(arg, 0)
        if at is None:  # replicated: the same array on every process.
          continue
        if local and np.ndim(v):
          layout = ", ".join(["None"] * at + [repr(axis)])
          raise ValueError(
            f"shard({name}): {arg} is a process-local array "
            f"({type(v).__name__}) but the mesh spans {len(covered)} "
            "processes; pass a global jax.Array sharded like the embeddings: "
            "jax.make_array_from_process_local_data(jax.NamedSharding(mesh, "
            f"jax.P({layout})), local_{arg})."
          )
    if vocab_parallel:
      by_name = vocab_parallel_specs(dict(zip(array_names, arrays)))
      specs = tuple(by_name[n] for n in array_names)
    else:
      specs = tuple(batch_spec(n, x) for n, x in zip(array_names, arrays))
    if explicit:
      arrays = [
        jax.reshard(x, jax.NamedSharding(mesh, s))
        for x, s in zip(arrays, specs)
      ]

    def local(*shards):
      it = iter(shards)
      full = [next(it) if a else v for v, a in zip(values, is_array)]
      return loss_fn(
        *full[: len(args)], **passed, **dict(zip(kwargs, full[len(args) :]))
      )

    per_token = loss_fn is linear.linear_log_probs
    if per_token or kwargs.get("reduction", "mean") == "none":
      out_specs = spec
    else:
      out_specs = jax.P()
    replicated = REPLICATED_OUTPUTS.get(loss_fn, 0)
    if replicated:
      out_specs = (out_specs,) + (jax.P(),) * replicated
    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=out_specs)(
      *arrays
    )

  return sharded


__all__ = ["shard"]
