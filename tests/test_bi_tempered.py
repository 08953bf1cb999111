"""Value and gradient tests for jaxloss.bi_tempered_logistic_loss (issue 23
§4), against Google's reference code, ``jax_bitempered_loss.loss`` (the
``jax-bitempered-loss`` package, a test dependency: google/bi-tempered-loss),
called here, and against optax's softmax cross-entropy at t1 = t2 = 1.

Tolerances: float32 rounding. jaxloss runs the same normalisation steps as
Google's in the same order, but evaluates powers of ``p`` from ``log p``
and drops Google's ``+1e-10`` inside ``log_t(labels)``, so values agree to a
few float32 ulps of the per-class terms (relative 1e-5 of the value's
scale) and gradients to 1e-5 of their largest entry.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax_bitempered_loss import loss as google

import jaxloss as jl

K = 5
# (t1, t2, label_smoothing, num_iters): t2 = 1 (log-sum-exp), t2 > 1 (fixed
# point), t2 < 1 (bisection), with and without smoothing, Google's default
# 5 iterations and more.
SETTINGS = [
  (1.0, 1.0, 0.0, 5),
  (0.8, 1.2, 0.0, 5),
  (0.5, 1.5, 0.1, 5),
  (0.2, 4.0, 0.0, 10),
  (0.7, 1.0, 0.2, 5),
  (1.0, 1.5, 0.0, 5),
  (1.2, 1.3, 0.0, 5),
  (0.5, 0.8, 0.0, 5),
  (0.3, 0.6, 0.1, 30),
  (0.8, 0.8, 0.0, 5),
]


def _inputs(rng, n=6, scale=2.0):
  logits = (scale * rng.normal(size=(n, K))).astype(np.float32)
  soft = rng.uniform(0.05, 1.0, size=(n, K))
  soft = (soft / soft.sum(-1, keepdims=True)).astype(np.float32)
  ids = rng.integers(0, K, size=n).astype(np.int32)
  return logits, soft, ids


def _both(logits, labels, t1, t2, ls, iters, cotangent):
  """Values and vector-Jacobian products of jaxloss and Google's."""

  def ours(x):
    return jl.bi_tempered_logistic_loss(
      x, labels, t1=t1, t2=t2, label_smoothing=ls, num_iters=iters
    )

  def theirs(x):
    probs = labels
    if probs.ndim == x.ndim - 1:
      probs = jax.nn.one_hot(probs, x.shape[-1], dtype=x.dtype)
    return google.bi_tempered_logistic_loss(x, probs, t1, t2, ls, iters)

  out = []
  for f in (ours, theirs):
    value, pull = jax.vjp(f, jnp.asarray(logits))
    out.append((np.asarray(value), np.asarray(pull(cotangent)[0])))
  return out


def _close(got, want, what):
  """Equal to float32 rounding, relative to the largest magnitude or 1 (the
  per-class terms and probabilities are O(1): absolute rounding ~6e-8)."""
  scale = max(np.max(np.abs(want)), 1.0)
  error = np.max(np.abs(got - want)) / scale
  assert error <= 1e-5, f"{what}: relative error {error:.2e}"
  return error


def test_matches_google_values_and_gradients():
  rng = np.random.default_rng(0)
  worst = {"value": 0.0, "gradient": 0.0}
  for t1, t2, ls, iters in SETTINGS:
    logits, soft, ids = _inputs(rng)
    cotangent = jnp.asarray(rng.uniform(0.5, 2.0, size=6), jnp.float32)
    for labels in (soft, ids):  # integer ids: one-hot, then Google's
      (v, g), (gv, gg) = _both(logits, labels, t1, t2, ls, iters, cotangent)
      what = f"t1={t1} t2={t2} ls={ls} iters={iters} {labels.dtype}"
      if t1 == 1.0 and t2 < 1.0:
        continue  # Google's 0 · log 0 is NaN there: see the next test
      worst["value"] = max(worst["value"], _close(v, gv, what + " value"))
      worst["gradient"] = max(worst["gradient"], _close(g, gg, what + " grad"))
  print(f"largest relative errors against Google: {worst}")


def test_finite_where_google_is_not():
  """Classes outside the finite support (t2 < 1, p = 0): Google's
  ``0 · log 0`` (t1 = 1) gives a NaN value and ``p^(t2 − t1)`` (t2 < t1) a
  NaN gradient; jaxloss gives 0 for those terms, and equals Google
  elsewhere (and everywhere for t2 >= t1, t2 = t1 included)."""
  logits = np.array([[8.0, 7.0, -6.0, 1.0, 2.0]], np.float32)
  soft = np.array([[0.7, 0.3, 0.0, 0.0, 0.0]], np.float32)
  one = jnp.ones(1, jnp.float32)
  (v, g), (gv, gg) = _both(logits, soft, 1.0, 0.6, 0.0, 30, one)
  assert np.isnan(gv).all() and np.isfinite(v).all() and np.isfinite(g).all()
  (v, g), (gv, gg) = _both(logits, soft, 0.9, 0.4, 0.0, 30, one)
  assert np.isfinite(gv).all() and np.isnan(gg).any()
  _close(v, gv, "value, t2 < t1")
  assert np.isfinite(g).all()
  # Google's closed form (bi_tempered_logistic_loss_bwd) in float64 NumPy
  # on Google's probabilities, the p = 0 classes' terms set to 0.
  p = np.asarray(google.tempered_softmax(jnp.asarray(logits), 0.4, 30), float)
  assert np.any(p == 0) and np.all(p[soft > 0] > 0)
  scaled = np.where(p > 0, (p - soft) * np.where(p > 0, p, 1) ** (0.4 - 0.9), 0)
  escorts = p**0.4 / np.sum(p**0.4)
  want = scaled - escorts * scaled.sum()
  _close(g, want, "gradient, t2 < t1")
  assert np.all(g[p == 0] == 0)  # p = 0: a locally constant class
  # A positive label outside the support, t2 = t1: Google's limit, -y.
  soft = np.array([[0.7, 0.0, 0.3, 0.0, 0.0]], np.float32)
  (v, g), (gv, gg) = _both(logits, soft, 0.8, 0.8, 0.0, 30, one)
  _close(v, gv, "value, t2 = t1")
  _close(g, gg, "gradient, t2 = t1")
  assert g[0, 2] < 0


def test_extreme_logits():
  """Logits of ±1e4: finite values and gradients for t1 < 1, equal to
  Google's."""
  logits = np.array(
    [[1e4, -1e4, 0.0, -1e4, 1e4], [-1e4, -1e4, -1e4, -1e4, 1e4]], np.float32
  )
  soft = np.array(
    [[0.0, 0.6, 0.4, 0.0, 0.0], [0.2, 0.2, 0.2, 0.2, 0.2]], np.float32
  )
  cotangent = jnp.ones(2, jnp.float32)
  for t1, t2 in ((0.8, 1.2), (0.5, 2.0), (0.5, 0.8), (0.7, 1.0)):
    (v, g), (gv, gg) = _both(logits, soft, t1, t2, 0.0, 10, cotangent)
    assert np.isfinite(v).all() and np.isfinite(g).all(), (t1, t2)
    _close(v, gv, f"value at ±1e4, t1={t1} t2={t2}")
    _close(g, gg, f"gradient at ±1e4, t1={t1} t2={t2}")
  # t1 = t2 = 1: the KL in log space stays finite (p underflows to 0).
  v = jl.bi_tempered_logistic_loss(logits, soft, t1=1.0, t2=1.0)
  assert np.isfinite(v).all()
  np.testing.assert_allclose(
    v,
    optax.softmax_cross_entropy(logits, soft)
    + (soft * np.log(np.where(soft > 0, soft, 1))).sum(-1),
    rtol=1e-6,
  )


def test_t1_t2_one_is_the_softmax_cross_entropy():
  rng = np.random.default_rng(1)
  logits, soft, ids = _inputs(rng, n=8)
  got = jl.bi_tempered_logistic_loss(logits, ids, t1=1.0, t2=1.0)
  want = optax.softmax_cross_entropy_with_integer_labels(logits, ids)
  np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
  one_hot = np.eye(K, dtype=np.float32)[ids]
  got = jl.bi_tempered_logistic_loss(logits, one_hot, t1=1.0, t2=1.0)
  np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
  # Soft labels: the KL to the labels, cross-entropy minus their entropy.
  got = jl.bi_tempered_logistic_loss(logits, soft, t1=1.0, t2=1.0)
  entropy = -(soft * np.log(soft)).sum(-1)
  want = optax.softmax_cross_entropy(logits, soft) - entropy
  np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
  # And the gradient is the cross-entropy's, softmax − labels.
  grad = jax.grad(
    lambda x: jnp.sum(jl.bi_tempered_logistic_loss(x, soft, t1=1.0, t2=1.0))
  )(logits)
  want = jax.grad(lambda x: jnp.sum(optax.softmax_cross_entropy(x, soft)))(
    logits
  )
  np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


def test_label_smoothing_is_googles_form():
  """(1 − K/(K−1)·ε)·y + ε/(K−1): 1 − ε on the class, ε/(K−1) elsewhere,
  not optax's (1 − ε)·y + ε/K: optax at ε·K/(K−1) gives Google's labels."""
  rng = np.random.default_rng(2)
  logits, _, ids = _inputs(rng)
  eps = 0.2
  google_labels = np.full((6, K), eps / (K - 1), np.float32)
  google_labels[np.arange(6), ids] = 1 - eps
  for t1, t2 in ((0.8, 1.2), (1.0, 1.0)):
    got = jl.bi_tempered_logistic_loss(
      logits, ids, t1=t1, t2=t2, label_smoothing=eps
    )
    want = jl.bi_tempered_logistic_loss(logits, google_labels, t1=t1, t2=t2)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    optax_eps = eps * K / (K - 1)  # the same labels in optax's form
    smoothed = optax.smooth_labels(np.eye(K, dtype=np.float32)[ids], optax_eps)
    np.testing.assert_allclose(smoothed, google_labels, rtol=1e-6)


def test_gradient_is_googles_closed_form_not_autodiff_of_the_iteration():
  """With 5 fixed-point steps the normalisation has not converged: the
  derivative of the computed value differs from the closed form, and
  jaxloss returns the closed form (Google's)."""
  rng = np.random.default_rng(3)
  logits, soft, _ = _inputs(rng)
  t1, t2 = 0.5, 2.5
  (_, g), (_, gg) = _both(logits, soft, t1, t2, 0.0, 2, jnp.ones(6))
  _close(g, gg, "closed form")
  with jax.enable_x64(True):
    x = logits.astype(np.float64)

    def value(x):
      return jnp.sum(
        jl.bi_tempered_logistic_loss(x, soft, t1=t1, t2=t2, num_iters=2)
      )

    step = 1e-6
    directions = np.eye(x.size).reshape((x.size,) + x.shape)
    central = jax.jit(
      jax.vmap(lambda d: (value(x + step * d) - value(x - step * d)) / 2)
    )
    fd = np.asarray(central(directions)).reshape(x.shape) / step
  assert np.max(np.abs(fd - gg)) > 1e-3  # the iteration's derivative differs


def test_masks_weights_and_bfloat16():
  rng = np.random.default_rng(4)
  logits, soft, ids = _inputs(rng)
  keep = np.array([True, False, True, True, False, True])
  kw = {"t1": 0.8, "t2": 1.2}
  masked = jl.bi_tempered_logistic_loss(
    logits, ids, where=keep, reduction="mean", **kw
  )
  sliced = jl.bi_tempered_logistic_loss(
    logits[keep], ids[keep], reduction="mean", **kw
  )
  np.testing.assert_allclose(masked, sliced, rtol=1e-6)
  half = jl.bi_tempered_logistic_loss(
    jnp.asarray(logits, jnp.bfloat16), soft, **kw
  )
  assert half.dtype == jnp.float32
  rounded = np.asarray(jnp.asarray(logits, jnp.bfloat16), np.float32)
  _, (want, _) = _both(rounded, soft, 0.8, 1.2, 0.0, 5, jnp.ones(6))
  _close(np.asarray(half), want, "bf16 against Google on the rounded logits")


def test_errors():
  logits = np.zeros((2, K), np.float32)
  labels = np.array([0, 1], np.int32)
  f = jl.bi_tempered_logistic_loss
  with pytest.raises(TypeError, match="bi_tempered_logistic_loss.*`t2`"):
    jax.jit(lambda t: f(logits, labels, t1=0.5, t2=t))(1.5)
  with pytest.raises(ValueError, match="bi_tempered_logistic_loss.*`t1`"):
    f(logits, labels, t1=2.0, t2=1.0)
  with pytest.raises(ValueError, match="`t2`"):
    f(logits, labels, t1=0.5, t2=0.0)
  for bad in (0, True, 2.0):
    with pytest.raises(ValueError, match="`num_iters` must be a positive int"):
      f(logits, labels, t1=0.5, t2=1.5, num_iters=bad)
  with pytest.raises(ValueError, match="`labels`"):
    f(logits, np.zeros((2, K + 1), np.float32), t1=0.5, t2=1.5)
  with pytest.raises(ValueError, match="`label_smoothing`"):
    f(logits, labels, t1=0.5, t2=1.5, label_smoothing=1.5)
