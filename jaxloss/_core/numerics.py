"""Stable numerical primitives shared by the loss families."""

from __future__ import annotations

import jax
import jax.numpy as jnp

_HALF_PRECISION = (jnp.float16, jnp.bfloat16)


def upcast(x: jax.Array) -> jax.Array:
  """float16 and bfloat16 are computed in float32; other dtypes are unchanged."""
  return x.astype(jnp.float32) if x.dtype in _HALF_PRECISION else x


def safe_norm(x: jax.Array, axis=-1, keepdims: bool = False) -> jax.Array:
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


def masked_log_softmax(
  logits: jax.Array, axis: int, element_mask: jax.Array | None
) -> jax.Array:
  """``log_softmax`` over the unmasked elements of ``axis``; masked entries 0.

  A fully masked row gives zeros with a finite gradient (``jax.nn.log_softmax``
  with ``where`` gives NaN there).
  """
  if element_mask is None:
    return jax.nn.log_softmax(logits, axis=axis)
  filled = jnp.where(element_mask, logits, jnp.finfo(logits.dtype).min)
  lse = jax.nn.logsumexp(filled, axis=axis, keepdims=True)
  return jnp.where(element_mask, filled - lse, 0)


def like(value, reference):
  """A numeric hyper-parameter in the dtype of ``reference`` (an array or a
  dtype).

  Python numbers stay Python numbers (weakly typed); arrays, possibly traced,
  are cast, so a float64 hyper-parameter never promotes a float32 loss.
  """
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    return value
  return jnp.asarray(value).astype(getattr(reference, "dtype", reference))
