"""Stable numerical primitives shared by the loss families."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

_HALF_PRECISION = (jnp.float16, jnp.bfloat16)


def upcast(x: jax.Array) -> jax.Array:
  """float16 and bfloat16 become float32; other dtypes are unchanged."""
  return x.astype(jnp.float32) if x.dtype in _HALF_PRECISION else x


def safe_norm(
  x: jax.Array, axis: int = -1, keepdims: bool = False
) -> jax.Array:
  """Euclidean norm whose gradient at the zero vector is 0 (not NaN)."""
  squared = jnp.sum(jnp.square(x), axis=axis, keepdims=keepdims)
  positive = squared > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1)), 0)


def safe_abs(x: jax.Array) -> jax.Array:
  """``|x|`` with gradient ``sign(x)``, so 0 at 0 (torch's ``l1_loss`` and
  TensorFlow's convention; ``jnp.abs``'s gradient is 1 there)."""
  return x * jax.lax.stop_gradient(jnp.sign(x))


def safe_sqrt(x: jax.Array) -> jax.Array:
  """``sqrt(max(x, 0))`` with gradient 0 (not inf) at 0."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1)), 0)


def safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator``, and 0 with a finite gradient where it is 0."""
  zero = denominator == 0
  return jnp.where(zero, 0, numerator / jnp.where(zero, 1, denominator))


def safe_log(x: jax.Array) -> jax.Array:
  """``log(x)`` for ``x >= 0``, with ``log(0)`` replaced by the log of the
  smallest normal number of the dtype, so values and gradients stay finite."""
  tiny = jnp.finfo(x.dtype).tiny
  return jnp.log(jnp.maximum(x, tiny))


def xlogx(x: jax.Array) -> jax.Array:
  """``x log x`` with the limit 0 at ``x = 0`` and a finite gradient there."""
  positive = x > 0
  return jnp.where(positive, x * jnp.log(jnp.where(positive, x, 1)), 0)


def log1mexp(x: jax.Array) -> jax.Array:
  r"""``log(1 - exp(x))`` for ``x <= 0``, accurate near 0 and for large ``-x``.

  Uses ``log(-expm1(x))`` for ``x > -log 2`` and ``log1p(-exp(x))`` below
  (Mächler, "Accurately computing log(1 − exp(−|a|))", 2012). ``x = 0`` gives
  ``-inf``, the exact value.
  """
  near_zero = x > -jnp.log(2.0)
  safe_near = jnp.where(near_zero, x, -1.0)
  safe_far = jnp.where(near_zero, -1.0, x)
  return jnp.where(
    near_zero, jnp.log(-jnp.expm1(safe_near)), jnp.log1p(-jnp.exp(safe_far))
  )


def log_sigmoid_pair(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(log σ(x), log σ(−x))``, both finite for any finite ``x``."""
  return jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)


def masked_logsumexp(
  logits: jax.Array, mask: jax.Array | None, axis: int = -1
) -> jax.Array:
  """``logsumexp`` over the unmasked entries of ``axis``; **0** for a row with
  none (not ``-inf``: a loss drops such rows, and 0 keeps them finite).

  Values and gradients are finite for any finite ``logits``; masked entries
  and empty rows get a zero gradient.
  """
  if mask is None:
    return jax.nn.logsumexp(logits, axis=axis)
  filled = jnp.where(mask, logits, -jnp.inf)
  peak = jnp.max(filled, axis=axis, keepdims=True)
  peak = jax.lax.stop_gradient(jnp.where(jnp.isfinite(peak), peak, 0))
  total = jnp.sum(jnp.exp(filled - peak), axis=axis)
  nonempty = total > 0
  log_total = jnp.log(jnp.where(nonempty, total, 1))
  return jnp.where(nonempty, log_total + jnp.squeeze(peak, axis), 0)


def masked_log_softmax(
  logits: jax.Array, axis: int, mask: jax.Array | None
) -> jax.Array:
  """``log_softmax`` over the unmasked entries of ``axis``; masked entries 0.

  A fully masked row gives zeros with a finite gradient (``jax.nn.log_softmax``
  with ``where`` gives NaN there).
  """
  if mask is None:
    return jax.nn.log_softmax(logits, axis=axis)
  lse = masked_logsumexp(logits, mask, axis)
  return jnp.where(mask, logits - jnp.expand_dims(lse, axis), 0)


def masked_max(
  x: jax.Array, mask: jax.Array | None, axis: int = -1
) -> jax.Array:
  """Max of ``x`` over the unmasked entries of ``axis``; 0 where none is."""
  if mask is None:
    return jnp.max(x, axis=axis)
  picked = jnp.max(jnp.where(mask, x, -jnp.inf), axis=axis)
  return jnp.where(jnp.any(mask, axis=axis), picked, 0)


def masked_min(
  x: jax.Array, mask: jax.Array | None, axis: int = -1
) -> jax.Array:
  """Min of ``x`` over the unmasked entries of ``axis``; 0 where none is."""
  return -masked_max(-x, mask, axis)


def masked_mean(
  x: jax.Array,
  mask: jax.Array | None,
  axis: int | tuple[int, ...] = -1,
  keepdims: bool = False,
) -> jax.Array:
  """Mean of ``x`` over the unmasked entries of ``axis``; 0 (gradient 0)
  where none is; masked entries never reach the result, whatever they hold."""
  if mask is None:
    return jnp.mean(x, axis=axis, keepdims=keepdims)
  total = jnp.sum(jnp.where(mask, x, 0), axis=axis, keepdims=keepdims)
  count = jnp.sum(mask, axis=axis, keepdims=keepdims, dtype=x.dtype)
  return safe_divide(total, count)


def clamped_log(p: jax.Array, floor: float = -100.0) -> jax.Array:
  """``max(log p, floor)`` for probabilities ``p`` in [0, 1]: torch's
  ``binary_cross_entropy`` clamp (``floor = -100``), so ``p = 0`` gives
  ``floor``. Below the smallest normal number the value carries no gradient
  (``1/p`` would overflow); in the clamped region the gradient is 0."""
  normal = p >= jnp.finfo(p.dtype).tiny
  log_normal = jnp.log(jnp.where(normal, p, 1))
  log_tiny = jax.lax.stop_gradient(jnp.log(jnp.where(normal, 1, p)))
  return jnp.maximum(jnp.where(normal, log_normal, log_tiny), floor)


def l2_normalize(
  x: jax.Array, axis: int = -1, eps: float | jax.Array = 1e-12
) -> jax.Array:
  """``x / max(‖x‖, eps)`` along ``axis``: the one L2 normalisation.

  ``eps = 1e-12`` is ``torch.nn.functional.normalize``'s rule (open_clip,
  sentence-transformers); ``optax.losses.ntxent`` divides by
  ``sqrt(max(‖x‖², ε_f32))``, which is ``eps = sqrt(finfo.eps)`` here. The
  zero vector gives 0; values and gradients are finite everywhere (the norm's
  gradient at 0 is 0, so a zero vector's gradient is ``1 / eps``, as torch's).
  """
  norm = safe_norm(x, axis=axis, keepdims=True)
  return x / jnp.maximum(norm, eps)


def safe_pow(x: jax.Array, exponent: float | jax.Array) -> jax.Array:
  """``max(x, 0) ** exponent`` with ``0 ** 0 = 1`` (jnp's, torch's and the
  mathematical convention) and finite gradients at ``x = 0`` (0 with respect
  to ``x`` and to ``exponent``, which may be traced)."""
  positive = x > 0
  powered = jnp.power(jnp.where(positive, x, 1), exponent)
  at_zero = jnp.where(jnp.asarray(exponent) == 0, 1, 0).astype(powered.dtype)
  return jnp.where(positive, powered, at_zero)


def like(value: Any, reference: Any) -> Any:
  """A numeric hyper-parameter in the dtype of ``reference`` (an array or a
  dtype).

  Python ``int`` and ``float`` stay as they are (JAX types them weakly);
  everything else, traced arrays and NumPy scalars included, is cast, so a
  float64 hyper-parameter never promotes a float32 loss.
  """
  if type(value) in (int, float):
    return value
  return jnp.asarray(value).astype(getattr(reference, "dtype", reference))
