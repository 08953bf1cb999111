"""Cross-entropy of a linear layer's logits without materialising them.

:func:`linear_cross_entropy` computes the cross-entropy of
``hidden @ weight (+ bias)`` a chunk of tokens at a time with
:mod:`jaxloss._core.linear_softmax`: each chunk holds one ``[chunk, vocab]``
block of logits. For ``"mean"`` and ``"sum"`` the gradients are computed in
the forward pass (three ``tokens × vocab × dim`` products); for the other
reductions a custom VJP recomputes each chunk in the backward pass (four).
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxloss._core import linear_losses, value_checks
from jaxloss._core.chunking import ChunkSize
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction

__all__ = ["linear_cross_entropy"]


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
  class_weights: ArrayLike | None = None,
  filter_eps: float | None = None,
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
  smoothing: ε spread over all ``V`` classes) plus PaLM's z-loss. With
  ``class_weights`` ``w``, torch's rule:
  ``(1 − ε)·w_y·(−log p_y) + (ε/V)·Σ_v w_v·(−log p_v)`` per token, and
  ``"mean"`` divides by ``Σ w_y`` over the counted tokens.

  The tokens are processed ``chunk_size`` at a time
  (:mod:`jaxloss._core.linear_softmax`): each chunk holds one ``[chunk,
  vocab]`` block of logits, never the whole ``[tokens, vocab]``. For
  ``"mean"`` and ``"sum"`` the gradients with respect to ``hidden``,
  ``weight``, ``bias``, a traced soft cap and ``class_weights`` are computed
  chunk by chunk **in the forward pass**, and the backward pass only scales
  them by the incoming cotangent: three ``tokens × vocab × dim`` products in
  all (the logits, the gradients of ``hidden`` and ``weight``), as
  Liger-Kernel's fused linear cross-entropy does. ``"none"`` and
  ``"batchmean"`` keep a custom VJP whose backward pass recomputes each
  chunk (four products). Values and gradients equal those of the
  materialised logits. A ``bfloat16`` weight is upcast one ``[dim, slice]``
  slice at a time (no float32 copy of the whole matrix; its gradient is
  accumulated in float32 and returned in bfloat16).

  Supported range: the logits ``hidden @ weight + bias`` must be finite in
  the compute dtype (in float32, ``|z| < 3.4e38``: e.g. entries of
  ``hidden`` and ``weight`` up to ``1e15`` in magnitude with ``dim`` below
  ``1e8``). They are computed before the soft cap, so larger logits
  overflow and give an inf or NaN value or gradient.

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
    class_weights: optional ``[vocab]`` per-class weights (torch's
      ``weight=``; may be traced and are differentiated).
    filter_eps: optional gradient filtering (Cut Cross-Entropy's
      ``filter_eps``): the gradient products of a ``[dim, slice]`` slice of
      the weight are skipped for a chunk of tokens when every softmax
      probability in that block is below ``filter_eps`` and it holds none of
      the chunk's labels. An approximation (each dropped entry of the logits'
      gradient is about ``p < filter_eps`` times the token's coefficient,
      plus ``ε·w_v/V`` with label smoothing); ``None`` (the default) is
      exact. It pays off when the softmax is peaked (a trained model's).
    chunk_size: tokens per chunk. ``"auto"`` (the default) computes the
      logits in one block, with plain autodiff, while ``tokens × vocab``
      logits fit the library's 16 MiB budget (four float32 copies), and
      otherwise takes the largest power of two of tokens whose ``[chunk,
      vocab]`` blocks do, at least 128 tokens
      (:mod:`jaxloss._core.chunking`); ``None`` is one dense block; an int
      is that many tokens (then only reverse-mode differentiation is
      supported).
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
  ``torch.nn.functional.cross_entropy`` (and torch 2.13's
  ``linear_cross_entropy``) with ``weight``, ``label_smoothing`` and its
  default ``ignore_index=-100`` (torch raises on other out-of-range labels;
  this gives NaN), in the manner of Apple's Cut Cross-Entropy and
  Liger-Kernel's fused linear cross-entropy. The vocabulary-parallel version
  is :func:`jaxloss.distributed.linear_cross_entropy`.

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
    Chowdhery et al., `PaLM <https://arxiv.org/abs/2204.02311>`_, 2022
    (z-loss); Gemma Team, `Gemma 2 <https://arxiv.org/abs/2408.00118>`_, 2024
    (logit soft-capping); Hsu et al., `Liger Kernel
    <https://arxiv.org/abs/2410.10989>`_, 2024 (gradients in the forward
    pass).
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
    mesh=linear_losses.Mesh(None, None),
  )
