"""The bodies of the linear-layer losses, on one device or vocabulary-parallel.

:func:`jaxloss.linear_cross_entropy` and :func:`jaxloss.linear_log_probs`
and their versions in :mod:`jaxloss.distributed` share these functions: the
checks, the per-token formula (a ``token_fn`` of
:mod:`jaxloss._core.linear_softmax`) and the reduction. With ``vocab_axis``
the weight, bias and class weights are this device's slice of the
vocabulary; with ``token_axis`` the tokens are this device's slice of the
batch, and the scalar reductions are over the global batch.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, ring
from jaxloss._core import linear_softmax as ls
from jaxloss._core.chunking import ChunkSize
from jaxloss._core.reduction import Reduction, reduce

# A token's state in the per-token parameters: scored, masked (exactly 0)
# or holding a label outside the vocabulary (NaN, loud).
SCORED, MASKED, INVALID = 1.0, 0.0, 2.0


class Mesh:
  """The vocabulary's and the tokens' mesh axes (either may be ``None``)."""

  def __init__(self, vocab_axis: Hashable | None, token_axis: Hashable | None):
    self.vocab_axis, self.token_axis = vocab_axis, token_axis

  def shards(self, axis) -> int:
    if axis is None:
      return 1
    return ring.axis_size(axis)

  def vocab_sum(self, x):
    return x if self.vocab_axis is None else jax.lax.psum(x, self.vocab_axis)

  def token_sum(self, x):
    return x if self.token_axis is None else jax.lax.psum(x, self.token_axis)

  def per_token(self, x):
    """``x`` cast to varying over ``token_axis`` (this device's tokens'
    values: a ``psum`` over it then adds the devices' parts)."""
    if self.token_axis is None:
      return x
    return ring.varying(x, self.token_axis)

  def replicated(self, x):
    """``x`` (equal on every device of ``vocab_axis``, but typed as varying
    over it: the engine's per-token values) as invariant over
    ``vocab_axis``, its cotangent passed unchanged to every device: each
    device's gradients are its own shard's part of the whole (summed by the
    engine's casts), so none may be scaled down."""
    axis = self.vocab_axis
    return x if axis is None else _replicated(x, axis)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _replicated(x, axis):
  return ls.first_copy(x, axis)


def _replicated_fwd(x, axis):
  return _replicated(x, axis), None


def _replicated_bwd(axis, _, cotangent):
  return (ring.varying(cotangent, axis),)


_replicated.defvjp(_replicated_fwd, _replicated_bwd)


def _is_zero(value: Any) -> bool:
  """A Python number equal to 0 (a term that can be left out statically)."""
  return checks.is_static_number(value) and value == 0


def _prepare(
  hidden, weight, labels, bias, class_weights, mesh: Mesh
) -> tuple[Any, ...]:
  """Checked arrays: ``(hidden, weight, labels, bias, class_weights, dtype,
  vocab, vocab_start)``. The weight keeps its dtype (a narrower one is
  upcast a slice at a time); the others take the compute dtype (float32 at
  least)."""
  weight = jnp.asarray(weight)
  if not jnp.issubdtype(weight.dtype, jnp.floating):
    raise checks.fail(
      f"argument `weight` must be a floating array, got dtype {weight.dtype} "
      f"with shape {weight.shape}.",
      TypeError,
    )
  arrays = dict(hidden=hidden, weight=jnp.zeros((), weight.dtype))
  for name, value in (("bias", bias), ("class_weights", class_weights)):
    if value is not None:
      arrays[name] = value
  converted = dict(zip(arrays, checks.floats(**arrays)))
  dtype = converted["hidden"].dtype
  hidden = converted["hidden"]
  labels = checks.as_labels("labels", labels)
  checks.min_rank("hidden", hidden, 1, "[..., dim]")
  checks.rank("weight", weight, 2)
  dim = hidden.shape[-1]
  checks.shape(
    "weight",
    weight,
    (dim, None),
    f"[dim, vocab] with dim = hidden.shape[-1] = {dim}",
  )
  checks.shape(
    "labels", labels, hidden.shape[:-1], "hidden's shape without its last axis"
  )
  local = weight.shape[1]
  what = "[vocab]" if mesh.vocab_axis is None else "[vocab / shards]"
  for name in ("bias", "class_weights"):
    if name in converted:
      checks.shape(name, converted[name], (local,), f"{what}, like weight")
  vocab = local * mesh.shards(mesh.vocab_axis)
  start = jnp.zeros((), jnp.int32)
  if mesh.vocab_axis is not None:
    start = jax.lax.axis_index(mesh.vocab_axis).astype(jnp.int32) * local
  return (
    hidden,
    weight,
    labels,
    converted.get("bias"),
    converted.get("class_weights"),
    dtype,
    vocab,
    start,
  )


def _token_mask(labels, where, ignore_index):
  keep = None
  if where is not None:
    keep = checks.broadcast_mask("where", where, labels.shape, same_rank=True)
  if ignore_index is not None:
    ignore = checks.scalar("ignore_index", ignore_index)
    valid = labels != ignore.astype(labels.dtype)
    keep = valid if keep is None else keep & valid
  return keep


def _state(labels, keep, vocab, dtype):
  """Per token: :data:`SCORED`, :data:`MASKED` or :data:`INVALID`."""
  valid = (labels >= 0) & (labels < vocab)
  state = jnp.where(valid, SCORED, INVALID)
  if keep is not None:
    state = jnp.where(keep, state, MASKED)
  return state.astype(dtype)


def _problem(mesh, vocab, needs, x: ls.Inputs, chunk_size, filter_eps=None):
  """The engine's static description; ``chunk_size`` an int, or ``"auto"``
  (the library's rule)."""
  (tokens, dim), local = x.hidden.shape, x.weight.shape[1]
  chunk = chunk_size if isinstance(chunk_size, int) else None
  return ls.Problem(
    vocab=vocab,
    needs=frozenset(needs),
    token_chunk=chunk or ls.token_chunk_size(tokens, local, x.hidden.dtype),
    slice_size=ls.slice_size(dim, local),
    vocab_axis=mesh.vocab_axis,
    token_axis=mesh.token_axis,
    filter_eps=filter_eps,
  )


def _scalar_or_none(arg, value, dtype):
  return None if value is None else checks.scalar(arg, value).astype(dtype)


def _dense(mesh: Mesh, chunk_size: ChunkSize, tokens: int, local: int, dtype):
  """Whether to materialise the logits (one device only): ``None``, an empty
  batch, or ``"auto"`` with ``tokens × vocab`` logits within the budget."""
  if mesh.vocab_axis is not None or mesh.token_axis is not None:
    return False
  if chunk_size is None or tokens == 0:
    return True
  return chunk_size == "auto" and (
    ls.token_chunk_size(tokens, local, dtype) >= tokens
  )


# --------------------------------------------------------------------------- #
# cross-entropy


def cross_entropy(
  hidden: Any,
  weight: Any,
  labels: Any,
  *,
  bias: Any,
  where: ArrayLike | None,
  ignore_index: ArrayLike | None,
  label_smoothing: ArrayLike,
  z_loss: ArrayLike,
  logit_soft_cap: ArrayLike | None,
  class_weights: Any,
  filter_eps: float | None,
  chunk_size: ChunkSize,
  weights: ArrayLike | None,
  reduction: Reduction,
  mesh: Mesh,
) -> jax.Array:
  """The body of :func:`jaxloss.linear_cross_entropy` (see its docstring)."""
  hidden, weight, labels, bias, class_weights, dtype, vocab, start = _prepare(
    hidden, weight, labels, bias, class_weights, mesh
  )
  checks.in_unit_interval("label_smoothing", label_smoothing)
  checks.nonnegative("z_loss", z_loss)
  if logit_soft_cap is not None:
    checks.positive("logit_soft_cap", logit_soft_cap)
  if filter_eps is not None and not (
    checks.is_static_number(filter_eps) and 0 < filter_eps < 1
  ):
    raise checks.fail(
      f"`filter_eps` must be None or a Python number in (0, 1), got "
      f"{filter_eps!r}."
    )
  chunk_size = checks.chunk_size(chunk_size)
  keep = _token_mask(labels, where, ignore_index)
  shape, dim, local = labels.shape, hidden.shape[-1], weight.shape[1]
  tokens = labels.size
  smoothing = not _is_zero(label_smoothing)
  use_z_loss = not _is_zero(z_loss)
  params = {"state": _state(labels, keep, vocab, dtype).reshape(-1)}
  # Scalars the token function reads travel in ``params`` (closed-over
  # arrays would leak out of the engine's custom VJP under an outer jit).
  if smoothing:
    params["epsilon"] = checks.scalar("label_smoothing", label_smoothing)
    params["epsilon"] = params["epsilon"].astype(dtype)
  if use_z_loss:
    params["z_weight"] = checks.scalar("z_loss", z_loss).astype(dtype)
  label_weights = None
  if class_weights is not None:
    # w_y: the shard that holds the label contributes it, the others 0.
    index = labels - start
    here = (index >= 0) & (index < local)
    picked = class_weights[jnp.clip(index, 0, max(local - 1, 0))]
    label_weights = mesh.vocab_sum(jnp.where(here, picked, 0))
    params["label_weight"] = label_weights.reshape(-1)
    params["weight_total"] = mesh.vocab_sum(jnp.sum(class_weights))
  needs = {"label"}
  if smoothing:
    needs.add("sum" if class_weights is None else "weighted_sum")

  def token_fn(comp, p):
    # −log p_y = log Σ exp(z − m) + (m − z_y): both terms ≥ 0, relative to
    # the max m, so small losses keep their precision.
    nll = comp["log_total"] + (comp["peak"] - comp["label"])
    lse = comp["log_total"] + comp["peak"]
    if class_weights is None:
      value = nll
      if smoothing:
        epsilon = p["epsilon"]
        mean_nll = comp["log_total"] + (comp["peak"] - comp["sum"] / vocab)
        value = (1 - epsilon) * nll + epsilon * mean_nll
    else:
      value = p["label_weight"] * nll
      if smoothing:
        # (ε/V) Σ_v w_v (lse − z_v)
        epsilon = p["epsilon"]
        spread = p["weight_total"] * lse - comp["weighted_sum"]
        value = (1 - epsilon) * value + epsilon * spread / vocab
    if use_z_loss:
      value = value + p["z_weight"] * jnp.square(lse)
    state = p["state"]
    value = jnp.where(state == SCORED, value, 0)
    value = jnp.where(state == INVALID, jnp.nan, value)
    return value * p["coef"] if "coef" in p else value

  cap = _scalar_or_none("logit_soft_cap", logit_soft_cap, dtype)
  x = ls.Inputs(
    hidden=hidden.reshape(-1, dim),
    weight=weight,
    labels=jnp.where(keep, labels, -1).reshape(-1)
    if keep is not None
    else labels.reshape(-1),
    bias=bias,
    class_weights=class_weights,
    cap=cap,
    scale=None,
    vocab_start=start,
  )
  combine = functools.partial(
    _combine,
    reduction=reduction,
    weights=weights,
    keep=keep,
    label_weights=label_weights,
    mesh=mesh,
  )
  if _dense(mesh, chunk_size, tokens, local, dtype):
    problem = _problem(mesh, vocab, needs, x, 1)
    comp = ls.dense_components(x, problem)
    return combine(token_fn(comp, params).reshape(shape))
  problem = _problem(mesh, vocab, needs, x, chunk_size, filter_eps)
  if reduction in ("mean", "sum"):
    # Σ coef · ℓ equals the reduction (linear in ℓ): the gradients are taken
    # in the forward pass.
    coef = jax.grad(lambda v: combine(v))(
      mesh.per_token(_zeros(shape, dtype, hidden, labels, where, weights))
    )
    params["coef"] = coef.reshape(-1)
    # This device's tokens' part of the sum: the whole over token_axis.
    return mesh.token_sum(
      mesh.replicated(ls.token_sum(token_fn, x, params, problem))
    )
  values = mesh.replicated(ls.token_values(token_fn, x, params, problem))
  return combine(values.reshape(shape))


def _zeros(shape, dtype, *arrays) -> jax.Array:
  """Zeros varying (inside ``shard_map``) over every mesh axis one of
  ``arrays`` varies over: the per-token values' type, so that the gradient
  of the reduction with respect to them holds no implicit ``psum``."""
  zeros = jnp.zeros(shape, dtype)
  for a in arrays:
    if a is not None:
      zeros = zeros + jnp.zeros_like(jnp.asarray(a), dtype=dtype, shape=())
  return zeros


def _combine(values, *, reduction, weights, keep, label_weights, mesh: Mesh):
  """:func:`jaxloss.reduce` over the global tokens; with class weights,
  ``"mean"`` divides by ``Σ weights · w_y`` (torch's weighted mean)."""
  local = functools.partial(reduce, weights=weights, where=keep)
  if reduction == "none":
    return local(values, "none")
  total = mesh.token_sum(local(values, "sum"))
  if reduction == "sum":
    return total
  if reduction == "batchmean":
    rows = values.shape[0] * mesh.shards(mesh.token_axis) if values.ndim else 1
    return total / max(rows, 1)
  counted = jnp.ones_like(values) if label_weights is None else label_weights
  denominator = mesh.token_sum(local(counted, "sum"))
  return total / jnp.where(denominator == 0, 1, denominator)


# --------------------------------------------------------------------------- #
# log-probabilities


def log_probs(
  hidden: Any,
  weight: Any,
  labels: Any,
  *,
  bias: Any,
  temperature: ArrayLike,
  logit_soft_cap: ArrayLike | None,
  return_entropy: bool,
  chunk_size: ChunkSize,
  mesh: Mesh,
):
  """The body of :func:`jaxloss.linear_log_probs` (see its docstring)."""
  hidden, weight, labels, bias, _, dtype, vocab, start = _prepare(
    hidden, weight, labels, bias, None, mesh
  )
  checks.positive("temperature", temperature)
  if logit_soft_cap is not None:
    checks.positive("logit_soft_cap", logit_soft_cap)
  if not isinstance(return_entropy, bool):
    raise checks.fail(
      f"`return_entropy` must be a Python bool, got {return_entropy!r}."
    )
  chunk_size = checks.chunk_size(chunk_size)
  shape, dim, local = labels.shape, hidden.shape[-1], weight.shape[1]
  tokens = labels.size
  inverse_t = 1 / checks.scalar("temperature", temperature).astype(dtype)
  params = {"state": _state(labels, None, vocab, dtype).reshape(-1)}
  needs = {"label", "expected"} if return_entropy else {"label"}

  def token_fn(comp, p):
    log_p = comp["label"] - comp["peak"] - comp["log_total"]
    log_p = jnp.where(p["state"] == SCORED, log_p, jnp.nan)
    if not return_entropy:
      return log_p
    entropy = comp["log_total"] + (comp["peak"] - comp["expected"])
    return jnp.stack([log_p, entropy], axis=-1)

  cap = _scalar_or_none("logit_soft_cap", logit_soft_cap, dtype)
  x = ls.Inputs(
    hidden=hidden.reshape(-1, dim),
    weight=weight,
    labels=labels.reshape(-1),
    bias=bias,
    class_weights=None,
    cap=cap,
    scale=inverse_t,
    vocab_start=start,
  )
  if _dense(mesh, chunk_size, tokens, local, dtype):
    problem = _problem(mesh, vocab, needs, x, 1)
    values = token_fn(ls.dense_components(x, problem), params)
  else:
    problem = _problem(mesh, vocab, needs, x, chunk_size)
    values = mesh.replicated(ls.token_values(token_fn, x, params, problem))
  if not return_entropy:
    return values.reshape(shape)
  return values[:, 0].reshape(shape), values[:, 1].reshape(shape)
