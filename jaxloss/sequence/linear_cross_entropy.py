"""Cross-entropy of a linear layer's logits without materialising them.

:func:`linear_cross_entropy` computes the cross-entropy of
``hidden @ weight (+ bias)`` over vocabulary chunks with the online
log-sum-exp of :mod:`jaxloss._core.online_softmax`: rows are the tokens, the
columns are the vocabulary. Only a ``[tokens, chunk]`` block of logits exists
at a time, in the forward pass and in the backward pass, which recomputes each
block and accumulates the gradients of ``hidden``, ``weight`` and ``bias``.

The weight is used in its ``[dim, vocab]`` layout: each chunk is a dynamic
slice of it, so no transposed or padded copy of the weight is made, and the
gradient of a slice (a dynamic update of zeros) is accumulated in place by XLA.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import (
  checks,
  chunking,
  online_softmax,
  value_checks,
)
from jaxloss._core import labels as labels_lib
from jaxloss._core.chunking import ChunkSize
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

__all__ = ["linear_cross_entropy"]


def _is_zero(value: Any) -> bool:
  """A Python number equal to 0 (a term that can be left out statically)."""
  return checks.is_static_number(value) and value == 0


@loss(labels=value_checks.class_index("weight", axis_arg=None))
def linear_cross_entropy(
  hidden: ArrayLike,
  weight: ArrayLike,
  labels: ArrayLike,
  *,
  bias: ArrayLike | None = None,
  where: ArrayLike | None = None,
  ignore_index: ArrayLike | None = -100,
  label_smoothing: ArrayLike = 0.0,
  z_loss: ArrayLike = 0.0,
  logit_soft_cap: ArrayLike | None = None,
  chunk_size: ChunkSize = "auto",
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""Cross-entropy of ``hidden @ weight + bias``, never materialising the
  logits.

  .. math::
    z = c \tanh\big((h W + b) / c\big), \qquad
    \ell = \operatorname{lse}(z) - (1 - \varepsilon)\, z_y
      - \frac{\varepsilon}{V} \sum_v z_v + \lambda_z \operatorname{lse}(z)^2

  (the soft cap ``c`` only with ``logit_soft_cap``). This is the token's
  cross-entropy ``(1 − ε)·(−log p_y) + ε·mean_v(−log p_v)`` (torch's label
  smoothing: ε spread over all ``V`` classes) plus PaLM's z-loss. The
  vocabulary is processed ``chunk_size`` columns at a time with an online
  log-sum-exp (:mod:`jaxloss._core.online_softmax`); the backward pass
  recomputes each chunk's logits (a custom VJP), so the temporary memory is
  O(tokens × chunk_size) instead of O(tokens × vocab). Values and gradients
  (with respect to ``hidden``, ``weight``, ``bias`` and a traced soft cap)
  equal those of the materialised logits.

  Supported range: the logits ``hidden @ weight + bias`` must be finite in
  ``hidden``'s dtype (in float32, ``|z| < 3.4e38``: e.g. entries of ``hidden``
  and ``weight`` up to ``1e15`` in magnitude with ``dim`` below ``1e8``).
  They are computed before
  the soft cap, so larger logits overflow and give an inf or NaN value or
  gradient (scaling them safely would cost an extra pass over ``weight``).

  Args:
    hidden: ``[..., dim]`` floating hidden states (e.g. ``[batch, time, dim]``).
    weight: ``[dim, vocab]`` output projection (a Flax ``Dense`` kernel, or
      the transposed embedding table of a tied model).
    labels: ``[...]`` integer token labels (``hidden``'s shape without
      ``dim``) in ``[0, vocab)``, or ``ignore_index``. Any other label that
      ``where`` does not mask out gives NaN for its token (loud on purpose:
      it is never silently scored against no class or another class).
    bias: optional ``[vocab]`` bias.
    where: optional boolean mask of ``labels``' rank (e.g. the padding mask
      ``[batch, time]``; size-1 axes broadcast); masked tokens may hold any
      label.
    ignore_index: the label value that takes no part, ``-100`` by default
      (the convention of torch's ``cross_entropy`` and of Hugging Face's
      padded labels): sugar for ``where=labels != ignore_index``. ``None``
      ignores no label (then every unmasked label must lie in
      ``[0, vocab)``).
    label_smoothing: ``ε`` in [0, 1] (may be traced).
    z_loss: ``λ_z ≥ 0``, the weight of ``lse(z)²`` (may be traced).
    logit_soft_cap: optional ``c > 0``: logits become ``c·tanh(z/c)`` (Gemma 2)
      before everything else (may be traced; it is differentiated).
    chunk_size: vocabulary columns per chunk. ``"auto"`` (the default; also
      ``None``) computes the logits in one block while ``tokens × vocab``
      logits fit the library's 16 MiB budget (four float32 copies), and
      otherwise takes the largest power-of-two chunk whose ``[tokens,
      chunk]`` blocks do, at least 128 columns
      (:mod:`jaxloss._core.chunking`). A chunk of at least the vocabulary
      size computes the logits in one block with plain autodiff; otherwise
      only reverse-mode differentiation is supported.
    weights: optional per-token weights broadcastable to ``labels``' shape.
    reduction: see :func:`jaxloss.reduce`; the default ``"mean"`` averages
      over the unmasked tokens only (no host sync).

  Returns:
    A scalar for ``"mean"``/``"sum"``, or ``[...]`` per-token values for
    ``"none"`` (masked tokens exactly 0).

  Matches ``optax.losses.softmax_cross_entropy_with_integer_labels(hidden @
  weight + bias, labels)`` on labels in ``[0, vocab)`` (optax has no
  ``ignore_index``: a negative label wraps round, ``-100`` scoring class
  ``vocab − 100``, and a label ``≥ vocab`` gives NaN), and
  ``torch.nn.functional.cross_entropy`` with ``label_smoothing`` and its
  default ``ignore_index=-100`` (torch raises on other out-of-range labels;
  this gives NaN), in the manner of Apple's
  Cut Cross-Entropy and Liger-Kernel's fused linear cross-entropy.

  >>> import jax.numpy as jnp, jaxloss
  >>> hidden = jnp.sin(jnp.arange(48.0)).reshape(2, 3, 8)
  >>> weight = jnp.cos(jnp.arange(80.0)).reshape(8, 10)
  >>> labels = jnp.array([[1, 2, 3], [4, 5, 0]])
  >>> padding = jnp.array([[True, True, True], [True, True, False]])
  >>> chunked = jaxloss.linear_cross_entropy(hidden, weight, labels,
  ...                                        where=padding, chunk_size=4)
  >>> dense = jaxloss.softmax_cross_entropy_with_integer_labels(
  ...     hidden @ weight, labels, where=padding, reduction="mean")
  >>> print(f"{float(chunked):.4f} {float(dense):.4f}")
  2.2450 2.2450

  References:
    Wijmans et al., `Cut Your Losses in Large-Vocabulary Language Models
    <https://arxiv.org/abs/2411.09009>`_, 2024 (chunked linear cross-entropy);
    Milakov and Gimelshein, `Online normalizer calculation for softmax
    <https://arxiv.org/abs/1805.02867>`_, 2018;
    Chowdhery et al., `PaLM <https://arxiv.org/abs/2204.02311>`_, 2022
    (z-loss); Gemma Team, `Gemma 2 <https://arxiv.org/abs/2408.00118>`_, 2024
    (logit soft-capping).
  """
  arrays = dict(hidden=hidden, weight=weight)
  if bias is not None:
    arrays["bias"] = bias
  converted = checks.floats(**arrays)
  hidden, weight = converted[:2]
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
  bias_array = None
  if bias is not None:
    bias_array = converted[2]
    checks.shape("bias", bias_array, weight.shape[1:], "[vocab]")
  checks.in_unit_interval("label_smoothing", label_smoothing)
  checks.nonnegative("z_loss", z_loss)
  if logit_soft_cap is not None:
    checks.positive("logit_soft_cap", logit_soft_cap)
  chunk_size = checks.chunk_size(chunk_size)
  keep = None
  if where is not None:
    keep = checks.broadcast_mask("where", where, labels.shape, same_rank=True)
  if ignore_index is not None:
    ignore = checks.scalar("ignore_index", ignore_index)
    valid = labels != ignore.astype(labels.dtype)
    keep = valid if keep is None else keep & valid
  values = _linear_cross_entropy(
    hidden,
    weight,
    labels,
    bias_array,
    keep,
    checks.scalar("label_smoothing", label_smoothing),
    checks.scalar("z_loss", z_loss),
    None
    if logit_soft_cap is None
    else checks.scalar("logit_soft_cap", logit_soft_cap),
    chunk_size=chunk_size,
    smoothing=not _is_zero(label_smoothing),
    use_z_loss=not _is_zero(z_loss),
  )
  # An unmasked label outside [0, vocab) (it matched no column) gives NaN.
  values = labels_lib.nan_unless_valid(values, labels, weight.shape[1])
  return reduce(values, reduction, weights=weights, where=keep)


def _logits(
  rows: dict, columns: dict, *, smoothing: bool
) -> online_softmax.Chunk:
  """One vocabulary chunk: logits, the label's logit and (for smoothing) all
  logits as a term to sum."""
  index = columns["index"]
  weight = rows["weight"]
  chunk, vocab = index.shape[0], weight.shape[1]
  if chunk < vocab:
    # A slice of [dim, vocab] in place (its gradient is an in-place update).
    # The last chunk of a vocabulary that chunk does not divide is clamped to
    # end at `vocab` and rolled so that position p holds column start + p
    # (positions past the end are the padding that `chunked` masks).
    start = index[0]
    clamped = jnp.minimum(start, vocab - chunk)
    weight = jax.lax.dynamic_slice_in_dim(weight, clamped, chunk, axis=1)
    if vocab % chunk:
      weight = jnp.roll(weight, clamped - start, axis=1)
  logits = jnp.matmul(rows["hidden"], weight)
  if "bias" in columns:
    logits = logits + columns["bias"][None, :]
  if "cap" in rows:
    cap = rows["cap"]
    logits = cap * jnp.tanh(logits / cap)
  label = jnp.where(index[None, :] == rows["labels"][:, None], logits, 0)
  terms = (label, logits) if smoothing else (label,)
  return online_softmax.Chunk(logits, None, terms)


@functools.partial(
  jax.jit, static_argnames=("chunk_size", "smoothing", "use_z_loss")
)
def _linear_cross_entropy(
  hidden: jax.Array,
  weight: jax.Array,
  labels: jax.Array,
  bias: jax.Array | None,
  keep: jax.Array | None,
  label_smoothing: jax.Array,
  z_loss: jax.Array,
  cap: jax.Array | None,
  *,
  chunk_size: ChunkSize,
  smoothing: bool,
  use_z_loss: bool,
) -> jax.Array:
  """Per-token values, ``labels``' shape: a scan over vocabulary chunks with
  a custom VJP (:func:`jaxloss._core.online_softmax.stats`). Tokens that
  ``keep`` drops get a label that matches no column."""
  dtype = hidden.dtype
  shape = labels.shape
  dim, vocab = weight.shape
  if keep is not None:
    labels = jnp.where(keep, labels, -1)  # dropped: matches no column.
  rows = {
    "hidden": hidden.reshape(-1, dim),
    "weight": weight,
    "labels": labels.reshape(-1),
  }
  if cap is not None:
    rows["cap"] = cap.astype(dtype)
  columns = {"index": jnp.arange(vocab, dtype=jnp.int32)}
  if bias is not None:
    columns["bias"] = bias
  chunk = chunking.auto_chunk_size(rows["hidden"].shape[0], vocab, dtype)
  if isinstance(chunk_size, int):
    chunk = None if chunk_size >= vocab else chunk_size
  stats = online_softmax.stats(
    functools.partial(_logits, smoothing=smoothing),
    rows,
    columns,
    chunk_size=chunk,
  )
  lse = cast(jax.Array, stats.row_lse)  # asked for: never None
  values = lse - stats.row_sums[0]
  if smoothing:
    epsilon = label_smoothing.astype(dtype)
    mean_logit = stats.row_sums[1] / vocab
    values = (1 - epsilon) * values + epsilon * (lse - mean_logit)
  if use_z_loss:
    values = values + z_loss.astype(dtype) * jnp.square(lse)
  return values.reshape(shape)
