"""Value and gradient tests for jaxloss.vector_quantization_loss and
jaxloss.straight_through (issue 23 §4).

References, written out in float64 NumPy (neither haiku nor sonnet is
installed):

* van den Oord, Vinyals and Kavukcuoglu 2017, "Neural Discrete
  Representation Learning", equation 3 without the reconstruction term:
  ``‖sg[z_e] − e‖² + β ‖z_e − sg[e]‖²``, here per example as a mean over its
  elements; its gradients written by hand (``sg`` blocks one side each).
* dm-haiku ``haiku/_src/nets/vqvae.py``, ``VectorQuantizer.__call__``:
  ``loss = q_latent_loss + commitment_cost * e_latent_loss`` with
  ``e_latent_loss = mean((sg(quantized) − inputs)²)`` and ``q_latent_loss =
  mean((quantized − sg(inputs))²)``, means over ALL elements (sonnet's
  ``VectorQuantizer`` is the same formula). Every example has the same
  number of elements, so the mean of per-example means (``"mean"``) is
  haiku's mean over everything.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss as jl

SETTINGS = [((4, 3, 2), 0.25), ((5, 7), 1.0), ((3, 2, 2, 4), 0.0), ((2,), 2.5)]


def _paper(z, e, beta):
  """Per-example value and the gradients of the summed value (float64)."""
  axes = tuple(range(1, z.ndim))
  n = int(np.prod(z.shape[1:]))
  diff = z - e
  value = (
    (1.0 + beta) * np.mean(diff**2, axis=axes)
    if axes
    else ((1.0 + beta) * diff**2)
  )
  grad_inputs = 2.0 * beta * diff / n  # commitment term only
  grad_quantized = -2.0 * diff / n  # codebook term only
  return value, grad_inputs, grad_quantized


def _haiku(z, e, beta):
  """haiku's VectorQuantizer loss (one scalar) and its gradients."""
  e_latent_loss = np.mean((e - z) ** 2)  # sg(quantized) − inputs
  q_latent_loss = np.mean((e - z) ** 2)  # quantized − sg(inputs)
  loss = q_latent_loss + beta * e_latent_loss
  return loss, 2.0 * beta * (z - e) / z.size, 2.0 * (e - z) / z.size


def test_values_and_gradients_match_the_paper_and_haiku():
  rng = np.random.default_rng(0)
  worst = 0.0
  with jax.enable_x64(True):
    for shape, beta in SETTINGS:
      z = rng.normal(size=shape)
      e = z + rng.normal(scale=0.7, size=shape)

      def per_example(z, e, beta=beta):
        return jl.vector_quantization_loss(z, e, commitment_cost=beta)

      value = per_example(z, e)
      g_z, g_e = jax.grad(lambda z, e: jnp.sum(per_example(z, e)), (0, 1))(z, e)
      want, want_z, want_e = _paper(z, e, beta)
      for got, ref in ((value, want), (g_z, want_z), (g_e, want_e)):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)

      def mean(z, e, beta=beta):
        return jl.vector_quantization_loss(
          z, e, commitment_cost=beta, reduction="mean"
        )

      loss, (h_z, h_e) = jax.value_and_grad(mean, (0, 1))(z, e)
      ref_loss, ref_z, ref_e = _haiku(z, e, beta)
      np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
      np.testing.assert_allclose(h_z, ref_z, rtol=1e-12, atol=1e-15)
      np.testing.assert_allclose(h_e, ref_e, rtol=1e-12, atol=1e-15)
      worst = max(worst, abs(float(loss) / ref_loss - 1))
  assert worst < 1e-12


def test_traced_commitment_cost_and_where():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(4, 3)).astype(np.float32)
  e = rng.normal(size=(4, 3)).astype(np.float32)
  f = jax.jit(
    lambda z, e, b: jl.vector_quantization_loss(z, e, commitment_cost=b)
  )
  want, _, _ = _paper(z.astype(np.float64), e.astype(np.float64), 0.5)
  np.testing.assert_allclose(f(z, e, jnp.float32(0.5)), want, rtol=1e-6)
  keep = np.array([True, False, True, True])
  masked = jl.vector_quantization_loss(z, e, where=keep, reduction="mean")
  np.testing.assert_allclose(
    masked, jl.vector_quantization_loss(z[keep], e[keep], reduction="mean")
  )


def test_negative_commitment_cost_is_an_error():
  z = np.zeros((2, 3), np.float32)
  with pytest.raises(ValueError, match="vector_quantization_loss.*commitment"):
    jl.vector_quantization_loss(z, z, commitment_cost=-1.0)


def test_straight_through_value_and_gradients():
  rng = np.random.default_rng(2)
  for dtype in (np.float32, jnp.bfloat16):
    z = jnp.asarray(rng.normal(size=(3, 4)), dtype)
    e = jnp.asarray(rng.normal(size=(3, 4)), dtype)
    out = jl.straight_through(z, e)
    assert out.dtype == e.dtype
    # The value is ``quantized`` exactly, bit for bit.
    np.testing.assert_array_equal(np.asarray(out), np.asarray(e))
    cotangent = jnp.asarray(rng.normal(size=(3, 4)), dtype)
    out, pull = jax.vjp(jl.straight_through, z, e)
    d_z, d_e = pull(cotangent)
    np.testing.assert_array_equal(np.asarray(d_z), np.asarray(cotangent))
    np.testing.assert_array_equal(np.asarray(d_e), 0)
    # Forward mode: identity in ``inputs``, nothing from ``quantized``.
    _, tangent = jax.jvp(jl.straight_through, (z, e), (cotangent, cotangent))
    np.testing.assert_array_equal(np.asarray(tangent), np.asarray(cotangent))
  # Under jit and vmap too.
  z, e = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
  np.testing.assert_array_equal(
    jax.jit(jax.vmap(jl.straight_through))(z, e), np.asarray(e, np.float32)
  )


def test_straight_through_errors():
  with pytest.raises(ValueError, match="straight_through.*same shape"):
    jl.straight_through(np.zeros(3, np.float32), np.zeros(4, np.float32))
  with pytest.raises(TypeError, match="straight_through.*`quantized`"):
    jl.straight_through(np.zeros(3, np.float32), np.zeros(3, np.int32))
