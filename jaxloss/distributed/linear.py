r"""Vocabulary-parallel losses of a language model's output layer.

:func:`linear_cross_entropy` and :func:`linear_log_probs` are the versions of
:func:`jaxloss.linear_cross_entropy` and :func:`jaxloss.linear_log_probs`
for a projection ``weight [dim, vocab]`` whose **vocabulary** is sharded over
a mesh axis (``vocab_axis``; tensor/model parallelism), called inside
:func:`jax.shard_map`. Each device holds ``weight[:, shard]`` (and the
matching shards of ``bias`` and ``class_weights``) and its tokens (sharded
over ``token_axis``, or replicated); it runs the token-chunked softmax
statistics of :mod:`jaxloss._core.linear_softmax` over its own columns, and the
per-token statistics (the max, the sum of exponentials, the label's logit,
the sums that label smoothing and the entropy need) are combined with one
``lax.pmax`` and one ``lax.psum`` of a few ``[chunk]`` vectors per chunk:
the logits, and the weight, never travel. The loss equals the one-device
function on the gathered arrays, in value and in gradient: ``hidden``'s
gradient is summed over ``vocab_axis``, the weight's (bias's, class
weights') over ``token_axis``, and stays sharded like the weight.

:func:`jaxloss.distributed.shard` wraps them in ``shard_map`` for callers
that hold global arrays (``NamedSharding``).
"""

from __future__ import annotations

from collections.abc import Hashable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, linear_losses, ring, value_checks
from jaxloss._core.chunking import ChunkSize
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction

__all__ = ["linear_cross_entropy", "linear_log_probs"]


def _global_class_index(args, arg):
  """:func:`value_checks.class_index` over the GLOBAL vocabulary and tokens.

  The vocabulary is the local ``weight.shape[-1]`` times the size of
  ``vocab_axis`` (the rule runs inside ``shard_map``, where
  :func:`jax.lax.axis_size` knows it). With ``token_axis`` the verdict and
  the report are combined over the token shards (the first offender's
  global index, the global count and range), so that every device raises
  together: a check failing on some devices only would leave the others
  waiting in the loss's collectives."""
  axis, token_axis = args.get("vocab_axis"), args.get("token_axis")
  shards = 1 if axis is None else ring.axis_size(axis)
  local = jnp.shape(args["weight"])[-1]
  # class_index counts the classes of `logits_arg`'s last axis: hand it a
  # stand-in of the global [1, vocab] shape (its shape only is read).
  stand_in = jax.ShapeDtypeStruct((1, local * shards), jnp.float32)
  ok, what, *rest = value_checks.class_index("weight", axis_arg=None)(
    {**args, "weight": stand_in}, arg
  )
  if token_axis is None or not rest:
    return ok, what, *rest
  values = dict(rest[0])
  n = ring.axis_size(token_axis)
  me = jax.lax.axis_index(token_axis)
  bad = jnp.logical_not(ok)
  first = jax.lax.pmin(jnp.where(bad, me, n), token_axis)
  pick = lambda v: jax.lax.psum(jnp.where(me == first, v, 0), token_axis)
  rows = jnp.shape(args[arg])[0] if jnp.ndim(args[arg]) else 1
  for key in values:
    if key == "count":
      values[key] = jax.lax.psum(values[key], token_axis)
    elif key == "low":
      values[key] = jax.lax.pmin(values[key], token_axis)
    elif key == "high":
      values[key] = jax.lax.pmax(values[key], token_axis)
    elif key == "index0":
      values[key] = pick(values[key] + me * rows)
    else:
      values[key] = pick(values[key])
  return jax.lax.psum(bad.astype(jnp.int32), token_axis) == 0, what, values


def _bound(name: str, axis) -> None:
  """A clear error when ``axis`` is not a mapped axis here."""
  try:
    jax.lax.axis_size(axis)
  except NameError:
    raise checks.fail(
      f"{name}={axis!r} is not a mapped axis here; call the loss inside "
      "jax.shard_map over that axis (or wrap it with "
      "jaxloss.distributed.shard(loss, mesh, axis=..., vocab_axis=...))."
    ) from None


def _check_vma(axis) -> None:
  """The losses need ``shard_map``'s device-variance types (``check_vma=True``,
  its default): the sums of the gradients over the mesh axes are the
  transposes of casts to device-varying, which are no-ops without them
  (``check_vma=False``, ``jax.pmap``), where the gradients would be wrong."""
  axes = set(axis) if isinstance(axis, tuple) else {axis}
  aval = jax.typeof(jax.lax.pcast(jnp.zeros(()), axis, to="varying"))
  kind = getattr(aval, "manual_axis_type", None)
  varying = kind.varying if kind is not None else getattr(aval, "vma", ())
  if not axes <= set(varying):
    raise checks.fail(
      "the vocabulary-parallel losses need jax.shard_map with "
      "check_vma=True (its default); check_vma=False and jax.pmap are not "
      "supported (their gradients would be wrong)."
    )


def _mesh(vocab_axis, token_axis) -> linear_losses.Mesh:
  """The mesh axes, checked: both bound here (inside ``shard_map``), and
  different."""
  if vocab_axis is None:
    raise checks.fail(
      "`vocab_axis` must name the mesh axis the vocabulary is sharded over "
      "(the one-device loss is jaxloss's, without vocab_axis)."
    )
  _bound("vocab_axis", vocab_axis)
  if token_axis is not None:
    _bound("token_axis", token_axis)
    as_set = lambda a: set(a) if isinstance(a, tuple) else {a}
    if as_set(vocab_axis) & as_set(token_axis):
      raise checks.fail(
        f"`vocab_axis`={vocab_axis!r} and `token_axis`={token_axis!r} "
        "share a mesh axis; the vocabulary and the tokens are sharded over "
        "different axes."
      )
  _check_vma(vocab_axis)
  return linear_losses.Mesh(vocab_axis, token_axis)


@loss(labels=_global_class_index)
def linear_cross_entropy(
  hidden: ArrayLike,
  weight: ArrayLike,
  labels: ArrayLike,
  *,
  vocab_axis: Hashable,
  token_axis: Hashable | None = None,
  bias: ArrayLike | None = None,
  where: ArrayLike | None = None,
  ignore_index: ArrayLike | None = -100,
  label_smoothing: ArrayLike = 0.0,
  z_loss: ArrayLike = 0.0,
  logit_soft_cap: ArrayLike | None = None,
  class_weights: ArrayLike | None = None,
  filter_eps: float | None = None,
  chunk_size: ChunkSize = "auto",
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""Cross-entropy of ``hidden @ weight + bias`` with the vocabulary sharded
  across devices (vocabulary-parallel), never materialising the logits.

  .. math::
    z = c \tanh\big((h W + b) / c\big), \qquad
    \ell = \operatorname{lse}(z) - (1 - \varepsilon)\, z_y
      - \frac{\varepsilon}{V} \sum_v z_v + \lambda_z \operatorname{lse}(z)^2

  over the **global** vocabulary ``V = vocab_local × shards``: the loss of
  :func:`jaxloss.linear_cross_entropy` on the gathered weight (see it for
  the options' meaning: torch's label smoothing and class weights, PaLM's
  z-loss, Gemma 2's soft cap, Cut Cross-Entropy's ``filter_eps``).

  Called inside :func:`jax.shard_map` (with ``check_vma=True``, its
  default; not under ``jax.pmap``) or through
  :func:`jaxloss.distributed.shard`: ``weight`` is this device's
  ``[dim, V / n]`` slice of the projection, the ``i``-th of the ``n``
  devices of ``vocab_axis`` holding the columns ``[i·V/n, (i+1)·V/n)``;
  ``hidden`` and ``labels`` are this device's tokens, sharded over
  ``token_axis`` (or the same on every device of a mesh without one).
  Labels are **global** class indices.

  **What is communicated.** Per chunk of ``chunk_size`` tokens, each device
  computes its ``[chunk, V / n]`` block of logits, then one ``lax.pmax`` of
  the per-token maxima (under ``stop_gradient``: the log-sum-exp does not
  depend on the shift) and one ``lax.psum`` over ``vocab_axis`` of a few
  ``[chunk]`` vectors (the sum of exponentials, the label's logit, which
  only the shard holding the label contributes, and with label smoothing
  ``Σ_v z_v`` or ``Σ_v w_v z_v``): so smoothing's ``ε/V · Σ_v z_v`` and the
  z-loss use the global ``V`` and the global log-sum-exp. The scalar
  reductions add a ``psum`` over ``token_axis``. Gradients: ``hidden``'s is
  summed over ``vocab_axis``, and the gradients of ``weight``, ``bias``,
  ``class_weights`` and the soft cap over ``token_axis``; the weight's stays
  ``[dim, V / n]`` on its device. **The weight is never gathered**, in the
  forward or the backward pass. For ``"mean"`` and ``"sum"`` the gradients
  are computed in the forward pass (three ``tokens × V/n × dim`` products
  per device); ``"none"`` and ``"batchmean"`` recompute each chunk in the
  backward pass (four).

  **Memory** per device: one ``[chunk, V / n]`` block of logits and its
  gradient, the ``[dim, V / n]`` gradient of the weight shard, and
  ``O(tokens)`` per-token statistics (see ``benchmarks/RESULTS.md``,
  *Vocabulary-parallel linear cross-entropy*).

  Args:
    hidden: ``[..., dim]`` this device's hidden states.
    weight: ``[dim, V / n]`` this device's shard of the output projection
      (for tied embeddings ``embedding.T`` with the embedding sharded on its
      first axis).
    labels: ``[...]`` global token labels in ``[0, V)`` or
      ``ignore_index``; any other unmasked label gives NaN for its token
      (and is reported by :func:`jaxloss.checked`).
    vocab_axis: the mesh axis (or tuple of axes) the vocabulary is sharded
      over.
    token_axis: the mesh axis (or tuple) the tokens are sharded over, or
      ``None`` when every device of the mesh holds the same tokens. The
      scalar reductions are over the global tokens.
    bias: optional ``[V / n]`` shard of the bias.
    where: optional boolean mask of ``labels``' rank (this device's tokens).
    ignore_index: the label that takes no part (``-100``; ``None``: none).
    label_smoothing: ``ε`` in [0, 1] (may be traced).
    z_loss: ``λ_z ≥ 0`` (may be traced).
    logit_soft_cap: optional ``c > 0`` (may be traced; differentiated).
    class_weights: optional ``[V / n]`` shard of the per-class weights
      (torch's ``weight=``; ``"mean"`` divides by the global ``Σ w_y``).
    filter_eps: optional gradient filtering (see
      :func:`jaxloss.linear_cross_entropy`); ``None`` is exact.
    chunk_size: tokens per chunk: ``"auto"`` (the largest power of two
      whose ``[chunk, V / n]`` blocks fit the 16 MiB budget, at least 128)
      or an int. Unlike the one-device loss there is no dense path:
      ``None`` is the same as ``"auto"``.
    weights: optional per-token weights broadcastable to ``labels``' shape.
    reduction: see :func:`jaxloss.reduce`, over the global tokens; the
      default ``"mean"`` averages over the unmasked tokens.

  Returns:
    A scalar, the same on every device, for ``"mean"``, ``"sum"`` and
    ``"batchmean"``; this device's ``[...]`` per-token values for
    ``"none"``.

  Matches :func:`jaxloss.linear_cross_entropy` on the gathered weight, bias
  and class weights and the concatenated tokens, value and gradients (and
  so ``torch.nn.functional.cross_entropy`` of the logits, and Megatron-LM's
  ``vocab_parallel_cross_entropy`` where its options apply).

  >>> import jax, jax.numpy as jnp, jaxloss, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("model",),  # any number of devices works
  ...                      axis_types=(jax.sharding.AxisType.Auto,))
  >>> hidden = jnp.sin(jnp.arange(48.0)).reshape(6, 8)
  >>> weight = jnp.cos(jnp.arange(80.0)).reshape(8, 10)
  >>> labels = jnp.array([1, 2, 3, 4, 5, -100])
  >>> loss = jax.jit(jax.shard_map(
  ...     lambda h, w, y: jd.linear_cross_entropy(h, w, y, vocab_axis="model"),
  ...     mesh=mesh, in_specs=(jax.P(), jax.P(None, "model"), jax.P()),
  ...     out_specs=jax.P()))
  >>> print(f"{loss(hidden, weight, labels):.4f}")
  2.2450
  >>> print(f"{jaxloss.linear_cross_entropy(hidden, weight, labels):.4f}")
  2.2450

  References:
    Shoeybi et al., `Megatron-LM <https://arxiv.org/abs/1909.08053>`_, 2019
    (the vocabulary-parallel cross-entropy, ``vocab_parallel_cross_entropy``;
    label smoothing over the global vocabulary: Megatron-LM issue 737);
    Wijmans et al., `Cut Your Losses in Large-Vocabulary Language Models
    <https://arxiv.org/abs/2411.09009>`_, 2024 (``VocabParallelOptions``);
    Hsu et al., `Liger Kernel <https://arxiv.org/abs/2410.10989>`_, 2024
    (fused linear cross-entropy, gradients in the forward pass).
  """
  return linear_losses.cross_entropy(
    hidden,
    weight,
    labels,
    bias=bias,
    where=where,
    ignore_index=ignore_index,
    label_smoothing=label_smoothing,
    z_loss=z_loss,
    logit_soft_cap=logit_soft_cap,
    class_weights=class_weights,
    filter_eps=filter_eps,
    chunk_size=chunk_size,
    weights=weights,
    reduction=reduction,
    mesh=_mesh(vocab_axis, token_axis),
  )


@loss(labels=_global_class_index)
def linear_log_probs(
  hidden: ArrayLike,
  weight: ArrayLike,
  labels: ArrayLike,
  *,
  vocab_axis: Hashable,
  token_axis: Hashable | None = None,
  bias: ArrayLike | None = None,
  temperature: ArrayLike = 1.0,
  logit_soft_cap: ArrayLike | None = None,
  return_entropy: bool = False,
  chunk_size: ChunkSize = "auto",
) -> jax.Array | tuple[jax.Array, jax.Array]:
  r"""Per-token log-probabilities (and entropy) of a vocabulary-parallel
  linear layer's softmax, never materialising the logits.

  .. math::
    z = c \tanh\big((h W + b) / c\big) / T, \qquad
    \log p_y = z_y - \operatorname{lse}(z), \qquad
    H = \operatorname{lse}(z) - \textstyle\sum_v p_v z_v

  over the **global** vocabulary (the soft cap first, then the temperature,
  as samplers apply them): :func:`jaxloss.linear_log_probs` of the gathered
  weight, for the policy-gradient fine-tuning of a model whose output layer
  is sharded over ``vocab_axis`` (GRPO, PPO: the log-probabilities of the
  sampled tokens and the entropy bonus at temperature ``T``).

  Inside :func:`jax.shard_map`, as :func:`linear_cross_entropy`: ``weight``
  and ``bias`` are this device's ``[dim, V / n]`` and ``[V / n]`` shards,
  ``hidden`` and ``labels`` this device's tokens with global labels. Per
  chunk one ``lax.pmax`` and one ``lax.psum`` over ``vocab_axis`` of
  ``[chunk]`` vectors (with the entropy, ``Σ_v e^{z_v − m} z_v`` too); the
  result is the same on every device of ``vocab_axis``. Differentiable
  (reverse mode) with respect to ``hidden`` (its gradient summed over
  ``vocab_axis``), ``weight``, ``bias``, a traced temperature and soft cap
  (summed over ``token_axis``); a custom VJP recomputes each chunk in the
  backward pass, without collectives. Memory per device: one ``[chunk,
  V / n]`` block of logits.

  Args:
    hidden: ``[..., dim]`` this device's hidden states.
    weight: ``[dim, V / n]`` this device's shard of the projection.
    labels: ``[...]`` global labels in ``[0, V)``; any other gives NaN (and
      is reported by :func:`jaxloss.checked`).
    vocab_axis: the mesh axis (or tuple) of the vocabulary.
    token_axis: the mesh axis (or tuple) of the tokens, or ``None``.
      Per-token outputs need no reduction over it; it only declares how
      the tokens vary.
    bias: optional ``[V / n]`` bias shard.
    temperature: ``T > 0`` (may be traced).
    logit_soft_cap: optional ``c > 0`` (may be traced).
    return_entropy: also return the per-token entropy.
    chunk_size: tokens per chunk (``"auto"`` or an int; ``None`` is
      ``"auto"``).

  Returns:
    ``[...]`` log-probabilities of the labels, or the tuple
    ``(log_probs, entropy)`` with ``return_entropy=True``; this device's
    tokens, the same on every device of ``vocab_axis``.

  Matches :func:`jaxloss.linear_log_probs` on the gathered weight, and
  ``jax.nn.log_softmax(z)[label]`` and ``-Σ softmax(z) log_softmax(z)`` of
  the materialised logits ``z``, values and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("model",),
  ...                      axis_types=(jax.sharding.AxisType.Auto,))
  >>> hidden = jnp.sin(jnp.arange(24.0)).reshape(3, 8)
  >>> weight = jnp.cos(jnp.arange(80.0)).reshape(8, 10)
  >>> labels = jnp.array([1, 2, 3])
  >>> fn = jax.jit(jax.shard_map(
  ...     lambda h, w, y: jd.linear_log_probs(h, w, y, vocab_axis="model",
  ...                                         temperature=0.7,
  ...                                         return_entropy=True),
  ...     mesh=mesh, in_specs=(jax.P(), jax.P(None, "model"), jax.P()),
  ...     out_specs=jax.P()))
  >>> log_p, entropy = fn(hidden, weight, labels)
  >>> print(*(f"{v:.4f}" for v in log_p), "|", *(f"{v:.4f}" for v in entropy))
  -2.9365 -2.7145 -2.3117 | 2.1774 2.1848 2.2060
  >>> z = hidden @ weight / 0.7
  >>> log_softmax = jax.nn.log_softmax(z)
  >>> entropy = -jnp.sum(jnp.exp(log_softmax) * log_softmax, axis=-1)
  >>> print(*(f"{v:.4f}" for v in log_softmax[jnp.arange(3), labels]), "|",
  ...       *(f"{v:.4f}" for v in entropy))
  -2.9365 -2.7145 -2.3117 | 2.1774 2.1848 2.2060

  References:
    Shoeybi et al., `Megatron-LM <https://arxiv.org/abs/1909.08053>`_, 2019
    (vocabulary-parallel softmax statistics); Wijmans et al., `Cut Your
    Losses in Large-Vocabulary Language Models
    <https://arxiv.org/abs/2411.09009>`_, 2024; Hsu et al., `Liger Kernel
    <https://arxiv.org/abs/2410.10989>`_, 2024.
  """
  return linear_losses.log_probs(
    hidden,
    weight,
    labels,
    bias=bias,
    temperature=temperature,
    logit_soft_cap=logit_soft_cap,
    return_entropy=return_entropy,
    chunk_size=chunk_size,
    mesh=_mesh(vocab_axis, token_axis),
  )
