"""Stable numerical primitives shared by the loss families."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

_HALF_PRECISION = (jnp.float16, jnp.bfloat16)


def upcast(x: jax.Array) -> jax.Array:
  """float16 and bfloat16 become float32; other dtypes are unchanged."""
  return x.astype(jnp.float32) if x.dtype in _HALF_PRECISION else x


def magnitude_scale(
  x: jax.Array, axis: int | tuple[int, ...] | None
) -> jax.Array:
  """The power of two at or just below ``max |x|`` along ``axis`` (kept), 1
  where that is 0 or not finite, with no gradient: the scale that keeps a
  norm's squares from overflowing. A power of two, so that dividing by it is
  exact (ordinary inputs give bit-identical results)."""
  peak = jnp.max(jnp.abs(x), axis=axis, keepdims=True, initial=0)
  _, exponent = jnp.frexp(peak)  # peak = mantissa · 2**exponent, mantissa < 1
  scale = jnp.ldexp(jnp.full_like(peak, 0.5), exponent)  # <= peak
  return jax.lax.stop_gradient(
    jnp.where((peak > 0) & jnp.isfinite(peak), scale, 1)
  )


def safe_norm(
  x: jax.Array, axis: int = -1, keepdims: bool = False
) -> jax.Array:
  """Euclidean norm whose gradient at the zero vector is 0 (not NaN), and
  that does not overflow where the norm is representable: ``m · ‖x / m‖``
  with ``m = max |x|`` (held constant; the norm is 1-homogeneous, so the
  gradient ``x / ‖x‖`` is exact). ``‖x‖²`` itself overflows float32 from
  ``|x| ≈ 1.8e19``."""
  peak = magnitude_scale(x, axis)
  squared = jnp.sum(jnp.square(x / peak), axis=axis, keepdims=True)
  positive = squared > 0
  norm = peak * jnp.where(
    positive, jnp.sqrt(jnp.where(positive, squared, 1)), 0
  )
  return norm if keepdims else jnp.squeeze(norm, axis)


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


@jax.custom_jvp
def sigmoid_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  r"""``−y log σ(x) − (1 − y) log σ(−x)``, elementwise, in one pass.

  .. math::
    \ell = \max(x, 0)(1 - y) - \min(x, 0)\, y + \log(1 + e^{-|x|})

  One exponential and one ``log1p`` per element (``log σ(x)`` and
  ``log σ(−x)`` separately take two of each), no cancellation (each term
  is >= 0), and a :func:`jax.custom_jvp` gradient ``σ(x) − y`` written as
  ``(1 − y) − σ(−x)`` for ``x >= 0``, so that small gradients keep their
  precision; with respect to ``y`` it is ``−x``.
  """
  log_term = jnp.log1p(jnp.exp(-jnp.abs(logits)))
  return (
    jnp.maximum(logits, 0) * (1 - labels)
    - jnp.minimum(logits, 0) * labels
    + log_term
  )


@sigmoid_cross_entropy.defjvp
def _sigmoid_cross_entropy_jvp(
  primals: tuple[jax.Array, jax.Array], tangents: tuple[Any, Any]
) -> tuple[jax.Array, jax.Array]:
  logits, labels = primals
  d_logits, d_labels = tangents
  values = sigmoid_cross_entropy(logits, labels)
  small = jnp.exp(-jnp.abs(logits))
  small = small / (1 + small)  # σ(−|x|)
  grad = jnp.where(logits >= 0, (1 - labels) - small, small - labels)
  return values, grad * d_logits - logits * d_labels


def log_softmax_at_temperature(
  logits: jax.Array, temperature: jax.Array
) -> jax.Array:
  """``log_softmax(logits / temperature)`` over the last axis, the logits
  shifted by their (gradient-free) maximum *before* the division: the same
  value, but exact at huge logits under ``jit`` (XLA on CPU gave ``inf``
  for every entry of ``log_softmax(x / T)`` at ``|x| ≈ 1e15`` in float32,
  while ``x - max`` is exactly 0 at the maximum)."""
  peak = jnp.max(logits, axis=-1, keepdims=True)
  peak = jax.lax.stop_gradient(jnp.where(jnp.isfinite(peak), peak, 0))
  return jax.nn.log_softmax((logits - peak) / temperature, axis=-1)


def masked_logsumexp(
  logits: jax.Array, mask: jax.Array | None, axis: int = -1
) -> jax.Array:
  """``logsumexp`` over the unmasked entries of ``axis``; **0** for a row with
  none (not ``-inf``: a loss drops such rows, and 0 keeps them finite).

  Values and gradients are finite for any finite ``logits``; masked entries
  and empty rows get a zero gradient. An axis of size 0 (an empty batch)
  gives 0 too.
  """
  if logits.shape[axis] == 0:
    return jnp.sum(jnp.zeros_like(logits), axis=axis)
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


def max_and_log_sum_exp(
  x: jax.Array, mask: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
  """``(m, log Σ exp(x − m))`` over the unmasked entries of the last axis,
  ``m`` their maximum (a constant for autodiff); ``logsumexp = m + second``.

  Both parts are >= 0 apart from ``m``, so ``second + (m − x_y)`` is a
  cross-entropy without cancellation, precise for small losses. A row with
  no unmasked entry gives ``(0, 0)``. Without a mask: one max and one fused
  ``Σ exp`` over ``x``, nothing else (``jax.nn.logsumexp`` would take a
  second maximum of the shifted values).
  """
  top = jax.lax.stop_gradient(masked_max(x, mask))
  shifted = x - top[..., None]
  if mask is None:
    return top, jnp.log(jnp.sum(jnp.exp(shifted), axis=-1))
  return top, masked_logsumexp(shifted, mask)


def _soft_cross_entropy_parts(
  logits: jax.Array, labels: jax.Array, epsilon: Any, poly: bool
) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array, Any]]:
  """Value of :func:`soft_cross_entropy`, and what its derivative uses."""
  shifted = logits - jax.lax.stop_gradient(jnp.max(logits, -1, keepdims=True))
  log_total = jnp.log(jnp.sum(jnp.exp(shifted), -1, keepdims=True))
  label_mass = jnp.sum(labels, -1)
  # Σ y (log_total − shifted), written so that XLA fuses each sum with its
  # elementwise part: no [..., C] array is kept between them. The clamp at
  # the lowest finite number makes a 0 label on a -inf logit count 0 (not
  # 0 · inf = NaN) without a select, which XLA:CPU would not fuse.
  lowest = jnp.finfo(logits.dtype).min
  values = log_total[..., 0] * label_mass - jnp.sum(
    labels * jnp.maximum(shifted, lowest), -1
  )
  one_minus = None
  if poly:  # Σ y (1 − p), precise where p is close to 1.
    one_minus = -jnp.sum(labels * jnp.expm1(shifted - log_total), -1)
    values = values + epsilon * one_minus
  return values, (shifted, log_total, label_mass, one_minus)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _soft_cross_entropy(
  logits: jax.Array, labels: jax.Array, epsilon: Any, poly: bool
) -> jax.Array:
  return _soft_cross_entropy_parts(logits, labels, epsilon, poly)[0]


def _soft_cross_entropy_jvp(
  poly: bool, primals: tuple[Any, ...], tangents: tuple[Any, ...]
) -> tuple[jax.Array, jax.Array]:
  logits, labels, epsilon = primals
  d_logits, d_labels, d_epsilon = tangents
  values, (shifted, log_total, label_mass, one_minus) = (
    _soft_cross_entropy_parts(logits, labels, epsilon, poly)
  )
  log_probs = shifted - log_total
  tangent = jnp.zeros_like(values)
  if not isinstance(d_logits, SymbolicZero):
    # softmax · Σy − y, one fused pass (the softmax recomputed, not stored).
    probs = jnp.exp(log_probs)
    grad = probs * label_mass[..., None] - labels
    if poly:  # ∂/∂x_j of −ε Σ y p: ε p_j (Σ y p − y_j)
      label_p = (label_mass - one_minus)[..., None]
      grad = grad + epsilon * probs * (label_p - labels)
    tangent = tangent + jnp.sum(grad * d_logits, -1)
  if not isinstance(d_labels, SymbolicZero):
    ruled_out = (labels == 0) & jnp.isneginf(log_probs)
    grad = -jnp.where(ruled_out, 0, log_probs)
    if poly:
      grad = grad - epsilon * jnp.expm1(log_probs)
    tangent = tangent + jnp.sum(grad * d_labels, -1)
  if poly and not isinstance(d_epsilon, SymbolicZero):
    tangent = tangent + one_minus * d_epsilon
  return values, tangent


_soft_cross_entropy.defjvp(_soft_cross_entropy_jvp, symbolic_zeros=True)


def soft_cross_entropy(
  logits: jax.Array, labels: jax.Array, epsilon: Any = None
) -> jax.Array:
  r"""``−Σ_c y_c log softmax(x)_c`` over the last axis; with ``epsilon``,
  plus the Poly-1 term ``ε Σ_c y_c (1 − softmax(x)_c)``.

  A :func:`jax.custom_jvp` (so forward and reverse mode, ``vmap``, and
  higher orders through the rule): the value is one max, one ``Σ exp`` and
  one ``Σ y·x`` over the logits, and the gradient ``softmax(x) Σy − y``
  (plus the Poly-1 term) one fused pass; no ``log_softmax`` array is kept.

  * A label 0 on a ``-inf`` logit counts 0 (no NaN); values and gradients
    stay finite there, the gradient with respect to that label is 0.
  * A positive label ``y_c`` on a ``-inf`` logit gives a value of at least
    ``y_c`` times the dtype's largest finite number (about ``3.4e38 y_c``
    in float32; the exact value is ``inf``), with the exact gradient
    ``-y_c``. Returning ``inf`` would need a select that XLA:CPU does not
    fuse: one more pass over the logits (docs/design.md).
  """
  poly = epsilon is not None
  return _soft_cross_entropy(
    logits, labels, like(epsilon if poly else 0.0, logits), poly
  )


def masked_max(
  x: jax.Array, mask: jax.Array | None, axis: int = -1
) -> jax.Array:
  """Max of ``x`` over the unmasked entries of ``axis``; 0 where none is
  (and over an axis of size 0)."""
  if x.shape[axis] == 0:
    return jnp.sum(jnp.zeros_like(x), axis=axis)
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


def example_mean(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Each example's mean: over every axis of ``x`` but the first (the batch),
  the unmasked entries only (:func:`masked_mean`); ``[batch]`` ``x`` is its
  own mean."""
  return masked_mean(x, mask, axis=tuple(range(1, x.ndim)))


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
  gradient at 0 is 0, so a zero vector's gradient is ``1 / eps``, as torch's),
  for any finite ``x`` (the norm is :func:`safe_norm`'s, which does not
  overflow). A ``custom_jvp`` keeps only the result and the norm for the
  backward pass.
  """
  return _l2_normalize(x, axis, eps)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _l2_normalize(x, axis, eps):
  return x / jnp.maximum(safe_norm(x, axis=axis, keepdims=True), eps)


@_l2_normalize.defjvp
def _l2_normalize_jvp(axis, primals, tangents):
  # d(x / n) = (t − y ⟨y, t⟩) / n where n = ‖x‖ > eps, else t / eps, with
  # y = x / n: no n² (which overflows float32 from n ≈ 1.8e19, so that
  # autodiff of x / n loses the second term at huge magnitudes).
  x, eps = primals
  t, _ = tangents
  norm = safe_norm(x, axis=axis, keepdims=True)
  scale = jnp.maximum(norm, eps)
  y = x / scale
  along = jnp.where(norm > eps, jnp.sum(y * t, axis=axis, keepdims=True), 0)
  return y, (t - y * along) / scale


def safe_pow(x: jax.Array, exponent: float | jax.Array) -> jax.Array:
  """``max(x, 0) ** exponent`` with ``0 ** 0 = 1`` (jnp's, torch's and the
  mathematical convention) and finite gradients at ``x = 0`` (0 with respect
  to ``x`` and to ``exponent``, which may be traced); NaN stays NaN."""
  computed = (x > 0) | jnp.isnan(x)  # a NaN stays NaN: never silently 0
  powered = jnp.power(jnp.where(computed, x, 1), exponent)
  at_zero = jnp.where(jnp.asarray(exponent) == 0, 1, 0).astype(powered.dtype)
  return jnp.where(computed, powered, at_zero)


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
