"""Softmax statistics of a linear layer's logits, a chunk of tokens at a time.

The language-model losses (:func:`jaxloss.linear_cross_entropy`,
:func:`jaxloss.linear_log_probs` and their vocabulary-parallel versions in
:mod:`jaxloss.distributed`) need, per token, a few statistics of the logits

.. math::
  z = s \\cdot c \\tanh\\big((h W + b) / c\\big)

(the soft cap ``c`` and the scale ``s`` optional) over the vocabulary, never
the ``[tokens, vocab]`` logits themselves. Those statistics, the
*components*, are:

* ``peak`` and ``log_total``: the token's largest logit ``m`` (a constant
  for differentiation) and ``log Σ_v exp(z_v − m)``, whose sum is the
  log-sum-exp (kept apart so that ``lse − z_y`` keeps its precision);
* ``label``: the logit of its label (0 for a label outside the vocabulary);
* ``sum``: the sum of its logits; ``weighted_sum``: ``Σ_v w_v z_v`` for
  class weights ``w``;
* ``expected``: ``Σ_v p_v z_v``, the logits' mean under the softmax ``p``
  (the entropy is ``lse − expected``).

A loss gives a ``token_fn(components, params) -> [n]`` that turns a chunk of
tokens' components (and per-token or scalar parameters: weights,
a smoothing ε, a z-loss weight) into per-token values, and gets back either

* :func:`token_values`: the ``[tokens]`` values, with a custom VJP whose
  backward pass recomputes each chunk's logits (four ``tokens × vocab × dim``
  products in all: the logits in the forward pass, again in the backward
  pass, and the gradients of ``hidden`` and ``weight``); or
* :func:`token_sum`: the scalar ``Σ values``, whose gradients (``hidden``,
  ``weight``, ``bias``, the cap and scale, the class weights and ``params``)
  are computed **during the forward pass** chunk by chunk, so that the
  backward pass only multiplies them by the incoming cotangent: three
  products in all, the least any exact method does (Liger-Kernel's fused
  linear cross-entropy does the same).

The scan runs over chunks of ``token_chunk`` tokens: each holds a ``[chunk,
vocab]`` block of logits (a full row per token, so its log-sum-exp is known
before its softmax gradient is formed), and reads the weight in slices of
``slice_size`` columns: a narrower weight (bfloat16) is upcast one slice at
a time, and the weight's gradient is accumulated slice by slice in place.

**Vocabulary parallelism.** With ``vocab_axis`` (inside
:func:`jax.shard_map`), ``weight``, ``bias`` and ``class_weights`` are this
device's slice of the vocabulary, starting at global column ``vocab_start``;
labels are global. Each chunk combines its per-token maxima with
``lax.pmax`` and its per-token sums with one ``lax.psum`` over
``vocab_axis`` (a few ``tokens``-sized vectors, never logits). The inputs are
first cast to device-varying (``jax.lax.pcast``) over ``vocab_axis`` and
``token_axis``, so the transposes of those casts sum the local gradients:
``hidden``'s over the vocabulary shards and the weight's over the token
shards; the weight's gradient is never gathered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp

from jaxloss._core import chunking, ring

TokenFn = Callable[[dict, Any], jax.Array]
COMPONENTS = ("peak", "log_total", "label", "sum", "weighted_sum", "expected")
SLICE_BYTES = 4 * 2**20  # a weight slice, upcast: [dim, slice] at most 4 MiB


class Problem(NamedTuple):
  """The static description of one call.

  Attributes:
    vocab: the global vocabulary size ``V``.
    needs: the components besides ``peak`` and ``log_total`` that
      ``token_fn`` reads.
    token_chunk: tokens per chunk.
    slice_size: weight columns per slice.
    vocab_axis: the mesh axis the vocabulary is sharded over, or ``None``.
    token_axis: the mesh axis the tokens are sharded over, or ``None``.
    filter_eps: skip the gradient products of a weight slice whose softmax
      probabilities are all below it for every token of the chunk and that
      holds none of their labels (Cut Cross-Entropy's gradient filtering);
      ``None``: exact.
  """

  vocab: int
  needs: frozenset
  token_chunk: int
  slice_size: int
  vocab_axis: Hashable | None = None
  token_axis: Hashable | None = None
  filter_eps: float | None = None


class Inputs(NamedTuple):
  """The arrays: ``hidden [tokens, dim]`` (the compute dtype),
  ``weight [dim, vocab_local]`` (any float dtype), ``labels [tokens]``
  (global indices; any other value matches no column), optional ``bias``
  and ``class_weights`` ``[vocab_local]``, optional scalar ``cap`` and
  ``scale``, and ``vocab_start`` (the global index of this device's first
  column, an int32 scalar)."""

  hidden: jax.Array
  weight: jax.Array
  labels: jax.Array
  bias: jax.Array | None
  class_weights: jax.Array | None
  cap: jax.Array | None
  scale: jax.Array | None
  vocab_start: jax.Array


def token_chunk_size(tokens: int, vocab: int, dtype) -> int:
  """Tokens per chunk for ``chunk_size="auto"``: the library's rule
  (:func:`jaxloss._core.chunking.auto_chunk_size`) with the vocabulary as the
  rows and the tokens as the columns, i.e. all tokens while ``tokens ×
  vocab`` logits fit the 16 MiB budget, else the largest power of two
  within it and at least 128 tokens."""
  chunk = chunking.auto_chunk_size(vocab, tokens, dtype)
  return max(tokens, 1) if chunk is None else chunk


def slice_size(dim: int, vocab: int) -> int:
  """Weight columns per slice: the largest power of two with a float32
  ``[dim, slice]`` slice within :data:`SLICE_BYTES`, at least 128, at most
  the vocabulary."""
  size = chunking.MIN_CHUNK
  while 2 * size * dim * 4 <= SLICE_BYTES:
    size *= 2
  return max(min(size, vocab), 1)


# --------------------------------------------------------------------------- #
# public entry points


def token_values(
  token_fn: TokenFn, x: Inputs, params, problem: Problem
) -> jax.Array:
  """``[tokens]`` values of ``token_fn``; reverse-mode differentiable (the
  backward pass recomputes each chunk's logits)."""
  floats, others, rebuild = _differentiable(x, params, problem)
  # The other leaves (labels, vocab_start) are arguments and residuals, not
  # closed over: inside shard_map the backward pass is traced apart from the
  # forward pass, where a closed-over tracer would leak.

  @jax.custom_vjp
  def run(floats, others):
    x, params = rebuild(floats, others)
    return _forward(token_fn, x, params, problem)[0]

  def run_fwd(floats, others):
    x, params = rebuild(floats, others)
    values, saved = _forward(token_fn, x, params, problem)
    return values, (floats, others, saved)

  def run_bwd(residuals, cotangent):
    floats, others, saved = residuals
    x, params = rebuild(floats, others)
    grads = _sweep(token_fn, x, params, problem, cotangent, saved)[1]
    return _cotangents(floats, grads), [None] * len(others)

  run.defvjp(run_fwd, run_bwd)
  return run(floats, others)


def token_sum(
  token_fn: TokenFn, x: Inputs, params, problem: Problem
) -> jax.Array:
  """``Σ`` over the tokens of ``token_fn``'s values (a scalar), with every
  gradient computed in the forward pass."""
  floats, others, rebuild = _differentiable(x, params, problem)
  # ``others`` are arguments, as in token_values: closed over, they leak
  # when the loss is jitted apart from its gradient (``grad(jit(loss))``).

  def forward(floats, others):
    x, params = rebuild(floats, others)
    # Varying like the values (inside shard_map): the cotangent of Σ values.
    ones = jnp.ones(x.labels.shape, x.hidden.dtype) + _zero(x)
    values, grads = _sweep(token_fn, x, params, problem, ones, None)
    return jnp.sum(values), _cotangents(floats, grads)

  @jax.custom_vjp
  def run(floats, others):
    return forward(floats, others)[0]

  def run_fwd(floats, others):
    value, grads = forward(floats, others)
    return value, (grads, len(others))

  def run_bwd(residuals, cotangent):
    grads, count = residuals
    scaled = jax.tree.map(lambda g: (cotangent * g).astype(g.dtype), grads)
    return scaled, [None] * count

  run.defvjp(run_fwd, run_bwd)
  return run(floats, others)


def dense_components(x: Inputs, problem: Problem) -> dict:
  """The components from the materialised ``[tokens, vocab]`` logits, with
  plain autodiff (one device): the path for problems that fit the budget,
  and for forward-mode differentiation."""
  logits = _transform(x, _matmul(x.hidden, x.weight, x.bias), None)
  label = _label_logits(x, x.hidden, x.labels)
  return _components(logits, x, problem, label)[0]


# --------------------------------------------------------------------------- #
# the differentiable leaves


def _differentiable(x: Inputs, params, problem: Problem):
  """The floating leaves of ``(x, params)`` (cast to device-varying over the
  problem's mesh axes), the other leaves, and a function rebuilding ``(x,
  params)`` from both."""
  leaves, treedef = jax.tree.flatten((x, params))
  is_float = [jnp.issubdtype(jnp.asarray(v).dtype, jnp.inexact) for v in leaves]
  # The parameters' leaves come after the inputs'.
  from_params = [i >= len(jax.tree.leaves(x)) for i in range(len(leaves))]
  floats = [v for v, f in zip(leaves, is_float) if f]
  floats_from_params = [p for p, f in zip(from_params, is_float) if f]
  others = [v for v, f in zip(leaves, is_float) if not f]
  vocab_axes = _axes(problem.vocab_axis)
  axes = vocab_axes + _axes(problem.token_axis)
  # Any other mesh axis an input varies over (the one-device loss called
  # inside a user's shard_map, tokens split over "data"): the gradients of
  # the inputs that do not vary over it are summed over it, as JAX's own
  # implicit casts would.
  others_axes = set().union(*(_varying_axes(v) for v in leaves)) - set(axes)
  axes = axes + tuple(sorted(others_axes, key=str))
  if axes:
    # A parameter is the same on every device of vocab_axis, and so is the
    # derivative each device finds for it: its cast keeps one copy of the
    # cotangent (a plain cast would sum the n copies). An input's
    # derivatives are each device's part of the whole: they are summed.
    floats = [
      _replicate(v, vocab_axes)
      if p and vocab_axes and not set(vocab_axes) & _varying_axes(v)
      else v
      for v, p in zip(floats, floats_from_params)
    ]
    floats = ring.varying(floats, axes)

  def rebuild(floats, others):
    it_f, it_o = iter(floats), iter(others)
    return jax.tree.unflatten(
      treedef, [next(it_f) if f else next(it_o) for f in is_float]
    )

  return floats, others, rebuild


def _varying_axes(x) -> frozenset:
  """The mesh axes ``x`` is typed as varying over (inside ``shard_map``)."""
  aval = jax.typeof(x)
  kind = getattr(aval, "manual_axis_type", None)
  if kind is not None:
    return frozenset(kind.varying)
  return frozenset(getattr(aval, "vma", ()))


def first_copy(x, axes):
  """``x``, equal on every device of ``axes`` but typed as varying over
  them, as invariant: the first device's copy, by a ``psum`` of it and
  zeros (exact, and NaN stays NaN; a ``pmax`` on XLA:CPU turns an all-NaN
  input into ``-inf``)."""
  first = jax.lax.axis_index(axes) == 0
  return jax.lax.psum(jnp.where(first, x, jnp.zeros_like(x)), axes)


def _axes(axis) -> tuple:
  if axis is None:
    return ()
  return tuple(axis) if isinstance(axis, tuple) else (axis,)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _replicate(x, axes):
  """``x``, the same on every device of ``axes``, cast to varying over them;
  the transpose takes one (any) of the devices' equal cotangents."""
  return jax.lax.pcast(x, axes, to="varying")


def _replicate_fwd(x, axes):
  return _replicate(x, axes), None


def _replicate_bwd(axes, _, cotangent):
  return (first_copy(cotangent, axes),)


_replicate.defvjp(_replicate_fwd, _replicate_bwd)


def _cotangents(floats: list, grads: tuple) -> list:
  """``grads`` (the gradients of ``Inputs``' floating fields and of
  ``params``, ``None`` where there is none) as cotangents of ``floats``, in
  their dtypes."""
  flat = jax.tree.leaves(grads)
  return [g.astype(f.dtype) for g, f in zip(flat, floats, strict=True)]


# --------------------------------------------------------------------------- #
# one chunk


def _matmul(hidden, weight, bias):
  logits = jnp.matmul(hidden, weight.astype(hidden.dtype))
  return logits if bias is None else logits + bias.astype(hidden.dtype)[None]


def _transform(x: Inputs, raw: jax.Array, cap_tanh):
  """The logits ``z`` from the raw ``h W + b`` (``cap_tanh``, when given,
  is ``tanh(raw / cap)``)."""
  z = raw
  if x.cap is not None:
    z = x.cap * (jnp.tanh(raw / x.cap) if cap_tanh is None else cap_tanh)
  return z if x.scale is None else z * x.scale


def _logits(x: Inputs, hidden: jax.Array, problem: Problem) -> jax.Array:
  """The raw ``[chunk, vocab_local]`` block ``h W + b``, computed a weight
  slice at a time (each upcast to the hidden states' dtype)."""
  vocab_local = x.weight.shape[1]
  size = problem.slice_size
  if size >= vocab_local or x.weight.dtype == hidden.dtype:
    return _matmul(hidden, x.weight, x.bias)
  # Varying like the slices' products (inside shard_map).
  block = jnp.zeros((hidden.shape[0], vocab_local), hidden.dtype) + _zero(x)

  def put(block, start, width):
    w, block = _weight_slice(x.weight, start, width, hidden.dtype, block)
    b = (
      None
      if x.bias is None
      else jax.lax.dynamic_slice_in_dim(x.bias, start, width)
    )
    return jax.lax.dynamic_update_slice_in_dim(
      block, _matmul(hidden, w, b), start, axis=1
    )

  return _over_slices(put, block, vocab_local, size)


def _weight_slice(weight, start, width, dtype, carry):
  """``(weight[:, start:start + width], carry)`` inside a loop over slices.

  A weight narrower than ``dtype`` (bfloat16) is first tied to the loop's
  ``carry`` by an optimisation barrier: XLA rewrites ``convert(slice(w))``
  as ``slice(convert(w))`` and would then hoist the loop-invariant
  ``convert(w)`` out of the loop, a float32 copy of the whole matrix."""
  if jnp.promote_types(weight.dtype, dtype) != weight.dtype:
    weight, carry = jax.lax.optimization_barrier((weight, carry))
  return jax.lax.dynamic_slice_in_dim(weight, start, width, axis=1), carry


def _over_slices(fn, carry, total: int, size: int):
  """``fn(carry, start, width)`` over ``[0, total)`` in slices of ``size``
  (a loop over the whole slices, then the remainder, statically)."""
  whole, rest = divmod(total, size)
  if whole == 1:
    carry = fn(carry, 0, size)
  elif whole:
    carry = jax.lax.fori_loop(
      0, whole, lambda i, c: fn(c, i * size, size), carry
    )
  if rest:
    carry = fn(carry, whole * size, rest)
  return carry


def _label_logits(x: Inputs, hidden, labels) -> jax.Array:
  """Each token's logit of its label, 0 for a label outside this device's
  columns: ``h · W[:, y] (+ b_y)`` from a gather of ``[dim]`` weight columns,
  not from the ``[chunk, vocab]`` block (which then has no reader left when
  its softmax is formed, and is overwritten in place)."""
  local = labels - x.vocab_start
  here = (local >= 0) & (local < x.weight.shape[1])
  index = jnp.clip(local, 0, x.weight.shape[1] - 1)
  weight = x.weight
  if jnp.promote_types(weight.dtype, hidden.dtype) != weight.dtype:
    # As in _weight_slice: no hoisted float32 copy of the whole weight.
    weight, hidden = jax.lax.optimization_barrier((weight, hidden))
  columns = jnp.take(weight, index, axis=1).astype(hidden.dtype)
  raw = jnp.sum(hidden * columns.T, axis=1)
  if x.bias is not None:
    raw = raw + jnp.take(x.bias, index).astype(hidden.dtype)
  return jnp.where(here, _transform(x, raw, None), 0)


def _components(z, x: Inputs, problem: Problem, label_logit):
  """``(components, peak, total, exp)`` of a ``[chunk, vocab_local]`` block
  of logits: per token the maximum over the whole vocabulary and the sum of
  ``exp(z − peak)``, combined over ``vocab_axis``; and the block
  ``exp(z − peak)`` itself (the softmax, unnormalised)."""
  axis = problem.vocab_axis
  peak = jax.lax.stop_gradient(jnp.max(z, axis=1))
  if axis is not None:
    peak = jax.lax.pmax(peak, axis)
  sums = {}
  needs = problem.needs
  if "label" in needs:
    sums["label"] = label_logit
  if "sum" in needs:
    sums["sum"] = jnp.sum(z, axis=1)
  if "weighted_sum" in needs:
    weights = cast(jax.Array, x.class_weights)
    sums["weighted_sum"] = jnp.sum(z * weights[None, :], axis=1)
  shift = jnp.where(jnp.isfinite(peak), peak, 0)[:, None]
  exp = jnp.exp(z - shift)
  sums["total"] = jnp.sum(exp, axis=1)
  if "expected" in needs:
    # exp · z is 0·(−inf) = NaN at a −inf logit: that entry has no mass
    # (z is replaced inside too, or autodiff's 0·(−inf) is NaN).
    mass = exp > 0
    sums["expected"] = jnp.sum(
      jnp.where(mass, exp * jnp.where(mass, z, 0), 0), axis=1
    )
  if axis is not None:
    sums = jax.lax.psum(sums, axis)
  total = sums.pop("total")
  components = dict(sums, peak=shift[:, 0], log_total=jnp.log(total))
  if "expected" in needs:
    components["expected"] = components["expected"] / total
  return components, shift[:, 0], total, exp


def _dlogits(z, exp_over_total, dcomp: dict, x: Inputs, columns, labels):
  """``Σ_k dcomp_k · ∂component_k/∂z``, a ``[chunk, vocab_local]`` block."""
  p = exp_over_total
  d = dcomp["log_total"][:, None] * p  # the peak is a constant
  if "label" in dcomp:
    onehot = columns[None, :] == labels[:, None]
    d = d + jnp.where(onehot, dcomp["label"][:, None], 0)
  if "sum" in dcomp:
    d = d + dcomp["sum"][:, None]
  if "weighted_sum" in dcomp:
    weights = cast(jax.Array, x.class_weights)
    d = d + dcomp["weighted_sum"][:, None] * weights[None, :]
  if "expected" in dcomp:
    # ∂(Σ p z)/∂z_v = p_v (1 + z_v − Σ p z).
    mean = dcomp["_expected_value"][:, None]
    centred = jnp.where(p > 0, 1 + z - mean, 0)
    d = d + dcomp["expected"][:, None] * p * centred
  return d


def _chunk(
  token_fn, x: Inputs, params, problem: Problem, start, size, cotangent, saved
):
  """One chunk of ``size`` tokens from ``start``.

  Returns ``(values, saved, grads)``: the chunk's values; its ``(components,
  peak, total)`` (computed, or sliced from ``saved``); and, when
  ``cotangent`` is given, the gradients of the chunk's ``Σ cotangent ·
  values`` as ``(dhidden chunk, dweight, dbias, dclass_weights, dcap,
  dscale, dparams chunk)``, the weight's gradient accumulated by the caller
  (a function of the accumulator: see :func:`_sweep`)."""
  take = lambda v: jax.lax.dynamic_slice_in_dim(v, start, size)
  hidden = take(x.hidden)
  labels = take(x.labels)
  p_chunk = jax.tree.map(lambda v: take(v) if jnp.ndim(v) else v, params)
  raw = _logits(x, hidden, problem)
  cap_tanh = None if x.cap is None else jnp.tanh(raw / x.cap)
  z = _transform(x, raw, cap_tanh)
  if saved is None:
    label = (
      _label_logits(x, hidden, labels) if "label" in problem.needs else None
    )
    comp, peak, total, exp = _components(z, x, problem, label)
  else:
    comp, peak, total = jax.tree.map(take, saved)
    exp = jnp.exp(z - peak[:, None])
  # Inside shard_map the combined components are invariant over vocab_axis:
  # cast them to varying like the parameters, or the vjp would transpose
  # the implicit cast into a psum (n times each device's own gradient).
  zero = _zero(x)
  comp_in = jax.tree.map(lambda c: c + zero.astype(c.dtype), comp)
  values, pull = jax.vjp(token_fn, comp_in, p_chunk)
  if cotangent is None:
    return values, (comp, peak, total), None
  dcomp, dparams = pull(take(cotangent).astype(values.dtype))
  if "expected" in dcomp:
    dcomp = dict(dcomp, _expected_value=comp["expected"])
  columns = x.vocab_start + jnp.arange(z.shape[1], dtype=labels.dtype)
  dz = _dlogits(z, exp / total[:, None], dcomp, x, columns, labels)
  # Through the scale and the soft cap to the raw logits.
  dcap = dscale = None
  if x.scale is not None:
    dscale = jnp.sum(dz * z) / x.scale
    dz = dz * x.scale
  if x.cap is not None:
    cap_tanh = cast(jax.Array, cap_tanh)
    slope = 1 - jnp.square(cap_tanh)
    dcap = jnp.sum(dz * (cap_tanh - raw / x.cap * slope))
    dz = dz * slope
  dbias = None if x.bias is None else jnp.sum(dz, axis=0)
  dclass = None
  if x.class_weights is not None:
    dclass = jnp.zeros(z.shape[1:], z.dtype)
    if "weighted_sum" in dcomp:
      dclass = jnp.sum(dcomp["weighted_sum"][:, None] * z, axis=0)
  keep = None
  if problem.filter_eps is not None:
    keep = (exp >= problem.filter_eps * total[:, None]) | (
      columns[None, :] == labels[:, None]
    )
  return (
    values,
    (comp, peak, total),
    (hidden, dz, keep, dbias, dclass, dcap, dscale, dparams),
  )


# --------------------------------------------------------------------------- #
# the sweep over token chunks


def _forward(token_fn, x: Inputs, params, problem: Problem):
  """Values and the saved ``(components, peak, total)`` of every token."""
  tokens = x.labels.shape[0]
  probe = jax.eval_shape(
    lambda: _chunk(token_fn, x, params, problem, 0, 1, None, None)[:2]
  )
  values0, saved0 = jax.tree.map(
    lambda s: jnp.zeros((tokens,) + s.shape[1:], s.dtype) + _zero(x), probe
  )

  def step(carry, start, size):
    values, saved = carry
    v, s, _ = _chunk(token_fn, x, params, problem, start, size, None, None)
    put = lambda a, b: jax.lax.dynamic_update_slice_in_dim(a, b, start, 0)
    return put(values, v), jax.tree.map(put, saved, s)

  return _over_slices(step, (values0, saved0), tokens, problem.token_chunk)


def _sweep(token_fn, x: Inputs, params, problem: Problem, cotangent, saved):
  """Values and the gradients of ``Σ cotangent · values``, chunk by chunk.

  With ``saved`` (the backward pass of :func:`token_values`) the statistics
  are read, not recomputed, and no collective runs."""
  tokens = x.labels.shape[0]
  dtype = x.hidden.dtype
  zero = _zero(x)

  def zeros_like(v, dt=None):
    return None if v is None else jnp.zeros(jnp.shape(v), dt or dtype) + zero

  probe = jax.eval_shape(
    lambda: _chunk(token_fn, x, params, problem, 0, 1, None, None)[0]
  )
  acc = {
    "values": jnp.zeros((tokens,) + probe.shape[1:], probe.dtype) + zero,
    "hidden": zeros_like(x.hidden),
    # float32 at least: a bfloat16 weight's gradient summed over the chunks.
    "weight": zeros_like(x.weight, jnp.promote_types(dtype, jnp.float32)),
    "bias": zeros_like(x.bias),
    "class_weights": zeros_like(x.class_weights),
    "cap": zeros_like(x.cap),
    "scale": zeros_like(x.scale),
    "params": jax.tree.map(lambda v: zeros_like(v), params),
  }

  def step(acc, start, size):
    values, _, grads = _chunk(
      token_fn, x, params, problem, start, size, cotangent, saved
    )
    hidden, dz, keep, dbias, dclass, dcap, dscale, dparams = grads
    put = lambda a, b: jax.lax.dynamic_update_slice_in_dim(a, b, start, 0)
    dhidden, dweight = _products(
      x.weight, hidden, dz, keep, acc["weight"], problem.slice_size
    )
    add = lambda a, b: None if a is None else a + b
    return {
      "values": put(acc["values"], values),
      "hidden": put(acc["hidden"], dhidden),
      "weight": dweight,
      "bias": add(acc["bias"], dbias),
      "class_weights": add(acc["class_weights"], dclass),
      "cap": add(acc["cap"], dcap),
      "scale": add(acc["scale"], dscale),
      "params": jax.tree.map(
        lambda a, d, v: put(a, d) if jnp.ndim(v) else a + d,
        acc["params"],
        dparams,
        params,
      ),
    }

  acc = _over_slices(step, acc, tokens, problem.token_chunk)
  # In the order of Inputs' floating fields (None where absent).
  names = ("hidden", "weight", "bias", "class_weights", "cap", "scale")
  return acc["values"], (tuple(acc[k] for k in names), acc["params"])


def _products(weight, hidden, dz, keep, dweight, slice_size: int):
  """``dz @ weightᵀ`` (the chunk's hidden-state gradient) and ``dweight +
  hiddenᵀ @ dz``, a weight slice at a time, the accumulator updated in
  place; a slice where ``keep`` (if given) is all false is skipped."""
  dtype = dz.dtype

  def one(carry, start, width):
    def products(carry):
      w, carry = _weight_slice(weight, start, width, dtype, carry)
      dhidden, dweight = carry
      g = jax.lax.dynamic_slice_in_dim(dz, start, width, axis=1)
      old = jax.lax.dynamic_slice_in_dim(dweight, start, width, axis=1)
      new = old + jnp.matmul(hidden.T, g).astype(dweight.dtype)
      dhidden = dhidden + jnp.matmul(g, w.astype(dtype).T)
      return dhidden, jax.lax.dynamic_update_slice_in_dim(
        dweight, new, start, axis=1
      )

    if keep is None:
      return products(carry)
    needed = jnp.any(jax.lax.dynamic_slice_in_dim(keep, start, width, axis=1))
    return jax.lax.cond(needed, products, lambda c: c, carry)

  dhidden = jnp.zeros(hidden.shape, dtype) + jnp.zeros_like(dz, shape=())
  return _over_slices(one, (dhidden, dweight), weight.shape[1], slice_size)


def _zero(x: Inputs) -> jax.Array:
  """A scalar 0 varying over every mesh axis any input varies over (so that
  loop carries have their bodies' types inside ``shard_map``)."""
  zero = jnp.zeros((), x.hidden.dtype)
  for leaf in jax.tree.leaves(x):
    zero = zero + jnp.zeros_like(leaf, dtype=zero.dtype, shape=())
  return zero
