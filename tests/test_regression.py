"""Value tests for jaxloss.regression.

References: optax 0.2.8 itself for its six names; torch's and sklearn's
formulas written out in float64 NumPy (neither is a test dependency), each
naming the function it mirrors; the catalogue's own formulas otherwise.
"""

import math

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss as jl
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects

RTOL, ATOL = 1e-5, 1e-6
F32, F64 = np.float32, np.float64


def _normal(seed, *shape):
  return np.random.default_rng(seed).normal(size=shape).astype(F32)


def _check(fn, args, expected, rtol=RTOL, atol=ATOL, **kwargs):
  """float32 within (rtol, atol) and float64 (under x64) within 1e-10 of a
  float64 NumPy reference."""
  out = fn(*args, **kwargs)
  assert out.dtype == jnp.float32
  assert_close(out, expected, rtol=rtol, atol=atol)
  with jax.enable_x64(True):
    out = fn(
      *[np.asarray(a, F64) if np.asarray(a).dtype == F32 else a for a in args],
      **kwargs,
    )
    assert out.dtype == jnp.float64
    assert_close(out, expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- #
# float64 NumPy references


def torch_smooth_l1(x, y, beta):
  """torch.nn.functional.smooth_l1_loss(x, y, reduction="none", beta=beta):
  l1_loss when beta == 0, else 0.5 z² / beta where |z| < beta, |z| - beta / 2
  elsewhere (z = x - y)."""
  z = np.asarray(x, F64) - np.asarray(y, F64)
  if beta == 0:
    return np.abs(z)
  return np.where(np.abs(z) < beta, 0.5 * z**2 / beta, np.abs(z) - 0.5 * beta)


def torch_poisson_nll(x, t, log_input=True, full=False, eps=1e-8):
  """torch.nn.functional.poisson_nll_loss(x, t, log_input, full, eps=eps,
  reduction="none"): exp(x) - t x, or x - t log(x + eps); with full, plus
  t log t - t + 0.5 log(2 pi t) masked to 0 where t <= 1."""
  x, t = np.asarray(x, F64), np.asarray(t, F64)
  loss = np.exp(x) - t * x if log_input else x - t * np.log(x + eps)
  if full:
    safe = np.where(t > 1, t, 1.0)
    stirling = safe * np.log(safe) - safe + 0.5 * np.log(2 * np.pi * safe)
    loss = loss + np.where(t > 1, stirling, 0.0)
  return loss


def torch_gaussian_nll(mu, y, var, full=False, eps=1e-6):
  """torch.nn.functional.gaussian_nll_loss(mu, y, var, full, eps,
  reduction="none"): var of mu's size is used as is; of mu.size()[:-1] it is
  unsqueezed at -1; any other shape broadcasts against mu. Clamped at eps,
  then 0.5 (log var + (mu - y)² / var) (+ 0.5 log 2 pi with full)."""
  mu, y, var = (np.asarray(a, F64) for a in (mu, y, var))
  if var.shape != mu.shape and var.shape == mu.shape[:-1]:
    var = var[..., None]
  var = np.maximum(var, eps)
  loss = 0.5 * (np.log(var) + (mu - y) ** 2 / var)
  return loss + 0.5 * math.log(2 * math.pi) if full else loss


def torch_gaussian_nll_grads(mu, y, var, eps=1e-6):
  """Gradients of torch's gaussian_nll_loss(..., reduction="sum") for a
  same-shaped var: the clamp runs under no_grad, so d/dvar is the derivative
  at the clamped value, passed through: 0.5 (1/v - (mu - y)² / v²)."""
  mu, y, var = (np.asarray(a, F64) for a in (mu, y, var))
  v = np.maximum(var, eps)
  return (mu - y) / v, (y - mu) / v, 0.5 * (1 / v - (mu - y) ** 2 / v**2)


def torch_cosine_embedding(x1, x2, t, margin=0.0):
  """torch.nn.functional.cosine_embedding_loss(x1, x2, t, margin,
  reduction="none") (ATen): cos = Σ x1 x2 / sqrt((Σ x1² + 1e-12)(Σ x2² +
  1e-12)); 1 - cos where t == 1, max(0, cos - margin) where t == -1, else 0."""
  x1, x2, t = np.asarray(x1, F64), np.asarray(x2, F64), np.asarray(t)
  cos = (x1 * x2).sum(-1) / np.sqrt(
    ((x1**2).sum(-1) + 1e-12) * ((x2**2).sum(-1) + 1e-12)
  )
  return np.where(t == 1, 1 - cos, 0.0) + np.where(
    t == -1, np.maximum(cos - margin, 0.0), 0.0
  )


def torch_hinge_embedding(x, t, margin=1.0):
  """torch.nn.functional.hinge_embedding_loss(x, t, margin, reduction="none")
  (ATen): where(t != 1, max(0, margin - x), 0) + where(t != -1, x, 0)."""
  x, t = np.asarray(x, F64), np.asarray(t)
  return np.where(t != 1, np.maximum(margin - x, 0.0), 0.0) + np.where(
    t != -1, x, 0.0
  )


def sklearn_mape(y_true, y_pred):
  """sklearn.metrics.mean_absolute_percentage_error(y_true, y_pred):
  mean(|y_pred - y_true| / max(|y_true|, finfo(float64).eps))."""
  y_true, y_pred = np.asarray(y_true, F64), np.asarray(y_pred, F64)
  eps = np.finfo(np.float64).eps
  return np.mean(np.abs(y_pred - y_true) / np.maximum(np.abs(y_true), eps))


def sklearn_msle(y_true, y_pred):
  """sklearn.metrics.mean_squared_log_error(y_true, y_pred):
  mean((log1p(y_true) - log1p(y_pred))²)."""
  y_true, y_pred = np.asarray(y_true, F64), np.asarray(y_pred, F64)
  return np.mean((np.log1p(y_true) - np.log1p(y_pred)) ** 2)


def pinball(y_pred, target, quantiles):
  """Koenker and Bassett's check function for y_pred [..., Q] and target
  [...]: per quantile, e = target - y_pred[..., i], max((q - 1) e, q e)
  (pytorch_forecasting's QuantileLoss.loss is twice this)."""
  e = np.asarray(target, F64)[..., None] - np.asarray(y_pred, F64)
  q = np.asarray(quantiles, F64)
  return np.maximum((q - 1) * e, q * e)


def catalogue_asymmetric_huber(p, t, delta, alpha):
  """DESIGN.md: a = p - t; a²/2 for |a| <= δ; δ(|a| - δ/2) for a > δ;
  αδ(|a| - δ/2) for a < -δ."""
  a = np.asarray(p, F64) - np.asarray(t, F64)
  linear = delta * (np.abs(a) - 0.5 * delta)
  return np.where(
    np.abs(a) <= delta, 0.5 * a**2, np.where(a > delta, linear, alpha * linear)
  )


def np_masked_rmse(p, t, mask, axis):
  e2 = (np.asarray(p, F64) - np.asarray(t, F64)) ** 2
  return np.sqrt((e2 * mask).sum(axis) / mask.sum(axis))


def np_nmae(p, t, normalizer, axis=None):
  p, t = np.asarray(p, F64), np.asarray(t, F64)
  mae = np.abs(p - t).mean(axis)
  if normalizer == "range":
    scale = t.max(axis) - t.min(axis)
  else:
    scale = np.abs(t.mean(axis))
  return mae / np.where(scale == 0, 1.0, scale)


# --------------------------------------------------------------------------- #
# optax drop-ins

ELEMENTWISE_OPTAX = ["squared_error", "l2_loss", "huber_loss", "log_cosh"]


@pytest.mark.parametrize("name", ELEMENTWISE_OPTAX)
@pytest.mark.parametrize("with_targets", [True, False])
def test_elementwise_matches_optax(name, with_targets):
  p, t = 3 * _normal(0, 4, 5), 3 * _normal(1, 4, 5)
  args = (p, t) if with_targets else (p,)
  ours, theirs = getattr(jl, name), getattr(optax.losses, name)
  assert_close(ours(*args), theirs(*args), RTOL, ATOL)
  assert_close(
    ours(*args, reduction="mean"), jnp.mean(theirs(*args)), RTOL, ATOL
  )
  if name == "huber_loss":
    assert_close(ours(*args, delta=0.3), theirs(*args, delta=0.3), RTOL, ATOL)
    assert_close(
      ours(*args, delta=jnp.float32(2.5)), theirs(*args, delta=2.5), RTOL, ATOL
    )


@pytest.mark.parametrize("name", ["cosine_similarity", "cosine_distance"])
@pytest.mark.parametrize(
  "kwargs",
  [{}, {"epsilon": 0.5}, {"axis": (1, 2)}, {"axis": None}, {"axis": 1}],
)
def test_cosine_matches_optax(name, kwargs):
  p, t = _normal(2, 3, 4, 5), _normal(3, 3, 4, 5)
  ours, theirs = getattr(jl, name), getattr(optax.losses, name)
  assert_close(ours(p, t, **kwargs), theirs(p, t, **kwargs), RTOL, ATOL)


@pytest.mark.parametrize("name", ["cosine_similarity", "cosine_distance"])
def test_cosine_element_where_matches_optax(name):
  p, t = _normal(4, 4, 6), _normal(5, 4, 6)
  where = np.random.default_rng(6).random((4, 6)) < 0.6
  where[:, 0] = True  # every example keeps an element (optax: NaN otherwise)
  ours, theirs = getattr(jl, name), getattr(optax.losses, name)
  assert_close(ours(p, t, where=where), theirs(p, t, where=where), RTOL, ATOL)


def _np_cosine(p, t, epsilon=0.0, axis=-1):
  """optax.losses.cosine_similarity in float64 NumPy: p·t / sqrt(max(‖p‖²,
  ε) max(‖t‖², ε))."""
  p, t = np.asarray(p, F64), np.asarray(t, F64)
  norm_p = np.maximum((p * p).sum(axis), epsilon)
  norm_t = np.maximum((t * t).sum(axis), epsilon)
  return (p * t).sum(axis) / np.sqrt(norm_p * norm_t)


@pytest.mark.parametrize("scale", [1e-30, 1e15, 1e19, 1e30])
def test_cosine_at_huge_and_tiny_magnitudes(scale):
  """Issue 19: at 1e19 the squared norms overflowed float32 and
  cosine_similarity gave 0 (cosine_embedding_loss at 1e15 likewise); the
  vectors are now divided by their largest magnitude first. Value and
  gradient equal float64 NumPy / the float64 computation."""
  p, t = _normal(40, 4, 6), _normal(41, 4, 6)
  p[1] *= 1e-3  # a short vector beside long ones: the scale is per example
  big_p, big_t = np.float32(p * scale), np.float32(t * scale)
  assert np.all(np.isfinite(big_p)) and np.all(np.isfinite(big_t))
  want = _np_cosine(big_p, big_t)
  assert_close(jl.cosine_similarity(big_p, big_t), want, 1e-5, 1e-6)
  assert_close(jl.cosine_distance(big_p, big_t), 1 - want, 1e-5, 1e-6)
  signs = np.array([1, -1, 1, -1], np.int32)
  assert_close(
    jl.cosine_embedding_loss(big_p, big_t, signs),
    torch_cosine_embedding(big_p, big_t, signs),
    1e-5,
    1e-6,
  )

  def grads(*args):
    return jax.grad(
      lambda a, b: jl.cosine_similarity(a, b, reduction="sum"),
      argnums=(0, 1),
    )(*args)

  got = grads(big_p, big_t)
  with jax.enable_x64(True):
    want_grads = grads(F64(big_p), F64(big_t))
  for g, w in zip(got, want_grads):
    assert_close(g, w, 1e-4, 1e-4 * np.max(np.abs(w)))


def test_cosine_zero_vectors_and_masked_examples():
  p = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]], F32)
  t = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], F32)
  assert_close(jl.cosine_similarity(p, t), [0.0, 0.0], RTOL, ATOL)
  assert_close(jl.cosine_distance(p, t), [1.0, 1.0], RTOL, ATOL)
  grads = jax.grad(
    lambda a, b: jl.cosine_distance(a, b, reduction="sum"), argnums=(0, 1)
  )(p, t)
  assert_close(grads[0], np.zeros_like(p), RTOL, ATOL)
  assert_close(grads[1], np.zeros_like(t), RTOL, ATOL)
  # An example with no element left is dropped (value 0, not optax's 1).
  where = np.array([[False] * 3, [True] * 3])
  assert_close(jl.cosine_distance(p, p, where=where), [0.0, 0.0], RTOL, ATOL)
  # A mask of the per-example shape drops examples.
  assert_close(
    jl.cosine_similarity(p, p, where=np.array([True, False])),
    [0.0, 0.0],
    RTOL,
    ATOL,
  )
  assert_close(
    jl.cosine_similarity(p, p, where=np.array([False, True])),
    [0.0, 1.0],
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# pointwise losses and metrics


@pytest.mark.parametrize(
  "fn,reference",
  [
    (jl.absolute_error, lambda p, t: np.abs(p - t)),
    (jl.squared_error, lambda p, t: (p - t) ** 2),
    (jl.l2_loss, lambda p, t: 0.5 * (p - t) ** 2),
    (jl.log_cosh, lambda p, t: np.log(np.cosh(p - t))),
  ],
)
def test_pointwise_formulas(fn, reference):
  p, t = _normal(7, 3, 4), _normal(8, 3, 4)
  _check(fn, (p, t), reference(p.astype(F64), t.astype(F64)))


def test_integer_targets_are_cast():
  p = np.array([0.5, 2.0], F32)
  assert_close(
    jl.squared_error(p, np.array([1, 2], np.int32)), [0.25, 0.0], RTOL, ATOL
  )


def test_root_mean_squared_error():
  p, t = _normal(9, 3, 4, 5), _normal(10, 3, 4, 5)
  e2 = (p.astype(F64) - t) ** 2
  # sklearn.metrics.root_mean_squared_error on 1-D inputs: sqrt(mean(e²)).
  _check(
    jl.root_mean_squared_error, (p[0, 0], t[0, 0]), np.sqrt(e2[0, 0].mean())
  )
  _check(jl.root_mean_squared_error, (p, t), np.sqrt(e2.mean()))
  _check(jl.root_mean_squared_error, (p, t), np.sqrt(e2.mean(-1)), axis=-1)
  _check(
    jl.root_mean_squared_error, (p, t), np.sqrt(e2.mean((1, 2))), axis=(1, 2)
  )
  assert_close(
    jl.root_mean_squared_error(p, t, axis=(1, 2), reduction="mean"),
    np.sqrt(e2.mean((1, 2))).mean(),
    RTOL,
    ATOL,
  )
  mask = np.random.default_rng(11).random(p.shape) < 0.5
  mask[..., 0] = True
  assert_close(
    jl.root_mean_squared_error(p, t, axis=-1, where=mask),
    np_masked_rmse(p, t, mask, -1),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.root_mean_squared_error(p, t, where=mask),
    np_masked_rmse(p, t, mask, None),
    RTOL,
    ATOL,
  )


def test_root_mean_squared_error_zero_error_gradient():
  x = _normal(12, 3, 4)
  for axis in (None, -1):
    value, grad = jax.value_and_grad(
      lambda p: jl.root_mean_squared_error(p, x, axis=axis, reduction="sum")
    )(x)
    assert float(value) == 0.0
    assert_close(grad, np.zeros_like(x), RTOL, ATOL)


@pytest.mark.parametrize("normalizer", ["range", "mean"])
def test_normalized_mean_absolute_error(normalizer):
  p = _normal(13, 3, 5)
  t = np.random.default_rng(14).uniform(1, 4, (3, 5)).astype(F32)
  _check(
    jl.normalized_mean_absolute_error,
    (p, t),
    np_nmae(p, t, normalizer),
    normalizer=normalizer,
  )
  _check(
    jl.normalized_mean_absolute_error,
    (p, t),
    np_nmae(p, t, normalizer, -1),
    normalizer=normalizer,
    axis=-1,
  )
  # Masked elements leave the mean and the normaliser.
  mask = np.ones((3, 5), bool)
  mask[:, 3:] = False
  assert_close(
    jl.normalized_mean_absolute_error(
      p, t, normalizer=normalizer, axis=-1, where=mask
    ),
    np_nmae(p[:, :3], t[:, :3], normalizer, -1),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("normalizer", ["range", "mean"])
def test_normalized_mean_absolute_error_degenerate_normaliser(normalizer):
  """A constant target ("range") or a zero mean ("mean") gives the plain MAE."""
  p = np.array([[1.0, -1.0, 0.5, 2.0], [3.0, 3.0, 3.0, 3.0]], F32)
  t = (
    np.zeros((2, 4), F32) if normalizer == "mean" else np.full((2, 4), 3.0, F32)
  )
  mae = np.abs(p.astype(F64) - t).mean(-1)
  value, grad = jax.value_and_grad(
    lambda p, t: jl.normalized_mean_absolute_error(
      p, t, normalizer=normalizer, axis=-1, reduction="sum"
    ),
    argnums=(0, 1),
  )(p, t)
  assert_close(value, mae.sum(), RTOL, ATOL)
  assert all(np.all(np.isfinite(g)) for g in grad)


def test_absolute_percentage_error_matches_sklearn():
  p = _normal(15, 4, 3)
  t = _normal(16, 4, 3)
  t[0] = 0.0  # sklearn's floor: finfo(float64).eps, also in float32
  _check(
    jl.absolute_percentage_error,
    (t, p),
    np.abs(p.astype(F64) - t)
    / np.maximum(np.abs(p.astype(F64)), np.finfo(F64).eps),
  )
  assert_close(
    jl.absolute_percentage_error(p, t, reduction="mean"),
    sklearn_mape(t, p),
    RTOL,
    ATOL,
  )


def test_squared_log_error_matches_sklearn():
  rng = np.random.default_rng(17)
  p, t = (rng.uniform(-0.9, 5, (4, 3)).astype(F32) for _ in range(2))
  _check(
    jl.squared_log_error,
    (p, t),
    (np.log1p(p.astype(F64)) - np.log1p(t.astype(F64))) ** 2,
  )
  assert_close(
    jl.squared_log_error(p, t, reduction="mean"), sklearn_msle(t, p), RTOL, ATOL
  )


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_smooth_l1_matches_torch(beta):
  p, t = 2 * _normal(18, 4, 5), _normal(19, 4, 5)
  _check(jl.smooth_l1_loss, (p, t), torch_smooth_l1(p, t, beta), beta=beta)
  # A traced beta of 0 is the L1 loss too, with finite gradients.
  f = jax.jit(
    lambda p, beta: jl.smooth_l1_loss(p, t, beta=beta, reduction="sum")
  )
  assert_close(
    f(p, beta), torch_smooth_l1(p, t, beta).sum(), rtol=1e-5, atol=1e-5
  )
  grads = jax.grad(f, argnums=(0, 1))(t, jnp.float32(beta))
  assert all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize(
  "fn,kwargs",
  [
    (jl.absolute_error, {}),
    (jl.smooth_l1_loss, {"beta": 0.0}),
    (jl.smooth_l1_loss, {}),
    (jl.normalized_mean_absolute_error, {}),
    (jl.absolute_percentage_error, {}),
  ],
)
def test_l1_gradient_at_zero_error_is_zero(fn, kwargs):
  """torch's l1_loss and smooth_l1_loss take sign(0) = 0 at zero error."""
  x = _normal(39, 3, 4) + 3
  grads = jax.grad(lambda p, t: jnp.sum(fn(p, t, **kwargs)), argnums=(0, 1))(
    x, x
  )
  assert_close(grads[0], np.zeros_like(x), RTOL, ATOL)
  assert_close(grads[1], np.zeros_like(x), RTOL, ATOL)


def test_smooth_l1_gradient_matches_torch_away_from_kinks():
  p, t = 2 * _normal(20, 4, 5), _normal(21, 4, 5)
  z = p.astype(F64) - t
  grad = jax.grad(lambda p: jl.smooth_l1_loss(p, t, reduction="sum"))(p)
  assert_close(grad, np.where(np.abs(z) < 1, z, np.sign(z)), RTOL, ATOL)


@hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
@hypothesis.given(
  hnp.arrays(F32, st.integers(1, 6), elements=st.floats(-50, 50, width=32)),
  st.floats(0.05, 5.0),
)
def test_smooth_l1_is_scaled_huber(errors, beta):
  zeros = np.zeros_like(errors)
  assert_close(
    jl.smooth_l1_loss(errors, zeros, beta=beta),
    jl.huber_loss(errors, zeros, delta=beta) / np.float32(beta),
    rtol=2e-5,
    atol=1e-5,
  )


@pytest.mark.parametrize("delta,alpha", [(1.0, 1.0), (0.5, 2.0), (2.0, 0.25)])
def test_asymmetric_huber_matches_catalogue(delta, alpha):
  p, t = 3 * _normal(22, 5, 4), _normal(23, 5, 4)
  _check(
    jl.asymmetric_huber_loss,
    (p, t),
    catalogue_asymmetric_huber(p, t, delta, alpha),
    delta=delta,
    alpha=alpha,
  )
  if alpha == 1.0:
    assert_close(
      jl.asymmetric_huber_loss(p, t), optax.losses.huber_loss(p, t), RTOL, ATOL
    )


def test_quantile_loss():
  p, t = _normal(24, 4, 3), _normal(25, 4)
  q = np.array([0.1, 0.5, 0.95], F32)
  expected = pinball(p, t, q)
  _check(jl.quantile_loss, (p, t), expected, quantiles=q)
  _check(
    jl.quantile_loss, (p, np.repeat(t[:, None], 3, 1)), expected, quantiles=q
  )
  scalar = pinball(p[..., None], p[..., ::-1], [0.3])[..., 0]
  _check(jl.quantile_loss, (p, p[..., ::-1].copy()), scalar, quantiles=0.3)
  assert_close(
    jl.quantile_loss(p, t[:, None].repeat(3, 1)),
    0.5 * np.abs(p.astype(F64) - t[:, None]),
    RTOL,
    ATOL,
  )
  # Quantiles may be traced, and differentiated.
  grad = jax.grad(
    lambda q: jl.quantile_loss(p, t, quantiles=q, reduction="sum")
  )(jnp.asarray(q))
  assert_close(grad, (t[:, None].astype(F64) - p).sum(0), RTOL, ATOL)


@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
def test_poisson_nll_matches_torch(log_input, full):
  rng = np.random.default_rng(26)
  x = (
    rng.normal(size=(4, 5)) if log_input else rng.uniform(0, 4, (4, 5))
  ).astype(F32)
  t = rng.integers(0, 6, (4, 5)).astype(F32)
  t[0] = [0, 1, 2, 0, 1]
  expected = torch_poisson_nll(x, t, log_input, full)
  _check(jl.poisson_nll_loss, (x, t), expected, log_input=log_input, full=full)
  assert_close(
    jl.poisson_nll_loss(x, t.astype(np.int32), log_input=log_input, full=full),
    expected,
    RTOL,
    ATOL,
  )
  grad = jax.grad(
    lambda x: jl.poisson_nll_loss(
      x, t, log_input=log_input, full=full, reduction="sum"
    )
  )(x)
  x64 = x.astype(F64)
  assert_close(
    grad,
    np.exp(x64) - t if log_input else 1 - t / (x64 + 1e-8),
    rtol=1e-4,
    atol=ATOL,
  )


def test_poisson_nll_eps():
  x, t = np.array([0.0, 1.0], F32), np.array([2.0, 2.0], F32)
  assert_close(
    jl.poisson_nll_loss(x, t, log_input=False, eps=1e-3),
    torch_poisson_nll(x, t, log_input=False, eps=1e-3),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize(
  "variance_shape", [(3, 4), (3, 1), (3,), (1, 4), (4,), (1, 1)]
)
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_matches_torch(variance_shape, full):
  """Issue 19: (1, 4), (4,) and (1, 1) variances broadcast against (3, 4)
  means (torch broadcasts them; jaxloss rejected them). torch is not in the
  venv: the reference is the NumPy transcription above."""
  rng = np.random.default_rng(27)
  mu, y = _normal(28, 3, 4), _normal(29, 3, 4)
  var = rng.uniform(0.1, 3, variance_shape).astype(F32)
  var.reshape(-1)[0] = 1e-8  # below eps: clamped
  _check(
    jl.gaussian_nll_loss,
    (mu, y, var),
    torch_gaussian_nll(mu, y, var, full),
    full=full,
  )


def test_gaussian_nll_eps_and_gradients_follow_torch():
  mu, y = _normal(30, 3, 4), _normal(31, 3, 4)
  var = np.random.default_rng(32).uniform(0.1, 3, (3, 4)).astype(F32)
  var[0] = [1e-9, 0.0, -0.5, 2e-6]  # under eps=1e-6, except the last
  assert_close(
    jl.gaussian_nll_loss(mu, y, var, eps=1e-3),
    torch_gaussian_nll(mu, y, var, eps=1e-3),
    RTOL,
    ATOL,
  )
  with jax.enable_x64(True):
    grads = jax.grad(
      lambda *a: jl.gaussian_nll_loss(*a, reduction="sum"), argnums=(0, 1, 2)
    )(*(a.astype(F64) for a in (mu, y, var)))
    for ours, theirs in zip(grads, torch_gaussian_nll_grads(mu, y, var)):
      assert_close(ours, theirs, rtol=1e-10, atol=ATOL)


def test_gaussian_nll_broadcast_variance_gradient():
  """The gradient of a broadcast (1, 4) variance sums torch's elementwise
  0.5 (1/v - (mu - y)² / v²) over the broadcast axis."""
  mu, y = _normal(60, 3, 4), _normal(61, 3, 4)
  var = np.random.default_rng(62).uniform(0.1, 3, (1, 4))
  with jax.enable_x64(True):
    grads = jax.grad(
      lambda *a: jl.gaussian_nll_loss(*a, reduction="sum"), argnums=(0, 1, 2)
    )(*(np.asarray(a, F64) for a in (mu, y, var)))
  want = torch_gaussian_nll_grads(mu, y, np.broadcast_to(var, (3, 4)))
  assert_close(grads[0], want[0], rtol=1e-10, atol=1e-12)
  assert_close(grads[2], want[2].sum(0, keepdims=True), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("margin", [0.0, 0.3, -0.5])
def test_cosine_embedding_matches_torch(margin):
  x1, x2 = _normal(33, 6, 5), _normal(34, 6, 5)
  x2[0] = x1[0]  # identical pair
  x1[1] = 0.0  # zero vector
  t = np.array([1, -1, 1, -1, 1, -1], np.int32)
  _check(
    jl.cosine_embedding_loss,
    (x1, x2, t),
    torch_cosine_embedding(x1, x2, t, margin),
    margin=margin,
  )
  assert_close(
    jl.cosine_embedding_loss(x1, x2, t.astype(F32), margin=margin),
    torch_cosine_embedding(x1, x2, t, margin),
    RTOL,
    ATOL,
  )
  # Targets other than +-1 contribute 0, as in torch.
  assert_close(
    jl.cosine_embedding_loss(x1, x2, np.zeros(6, np.int32)),
    np.zeros(6),
    RTOL,
    ATOL,
  )


def test_cosine_embedding_feature_mask():
  x1, x2 = _normal(35, 3, 5), _normal(36, 3, 5)
  t = np.array([1, -1, 1], np.int32)
  mask = np.ones((3, 5), bool)
  mask[:, 3:] = False
  assert_close(
    jl.cosine_embedding_loss(x1, x2, t, where=mask),
    torch_cosine_embedding(x1[:, :3], x2[:, :3], t),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("margin", [1.0, 0.5, 2.0])
def test_hinge_embedding_matches_torch(margin):
  x = np.abs(_normal(37, 4, 5)) * 2
  t = np.where(np.random.default_rng(38).random((4, 5)) < 0.5, 1, -1)
  _check(
    jl.hinge_embedding_loss,
    (x, t.astype(np.int32)),
    torch_hinge_embedding(x, t, margin),
    margin=margin,
  )
  t[0, 0] = 0  # neither 1 nor -1: both terms, as torch
  assert_close(
    jl.hinge_embedding_loss(x, t.astype(F32), margin=margin),
    torch_hinge_embedding(x, t, margin),
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# errors

TWO_ARRAY = [
  "squared_error",
  "l2_loss",
  "huber_loss",
  "log_cosh",
  "cosine_similarity",
  "cosine_distance",
  "absolute_error",
  "root_mean_squared_error",
  "normalized_mean_absolute_error",
  "absolute_percentage_error",
  "squared_log_error",
  "smooth_l1_loss",
  "asymmetric_huber_loss",
  "quantile_loss",
  "poisson_nll_loss",
  "hinge_embedding_loss",
]


@pytest.mark.parametrize("name", TWO_ARRAY)
def test_different_shapes_raise_at_trace_time(name):
  fn = getattr(jl, name)
  a, b = jnp.ones((4, 3)), jnp.ones((4, 1))
  for x, y in [(a, b), (a, jnp.ones(3)), (a, jnp.ones((3, 4)))]:
    with pytest.raises(ValueError, match=rf"{name}.*\(4, 3\).*\({y.shape[0]}"):
      jax.eval_shape(fn, x, y)


@pytest.mark.parametrize("name", TWO_ARRAY)
def test_integer_predictions_raise(name):
  with pytest.raises(TypeError, match=name):
    getattr(jl, name)(jnp.ones((2, 3), jnp.int32), jnp.ones((2, 3)))


X = jnp.ones((4, 3))


@pytest.mark.parametrize(
  "call,match",
  [
    (
      lambda: jl.gaussian_nll_loss(X, X, jnp.ones(2)),
      r"gaussian_nll_loss.*variances.*\(2,\)",
    ),
    (
      lambda: jl.gaussian_nll_loss(X, X, jnp.ones((4, 2))),
      r"gaussian_nll_loss.*variances.*\(4, 2\)",
    ),
    (
      lambda: jl.gaussian_nll_loss(X, jnp.ones((4, 1)), X),
      r"gaussian_nll_loss.*\(4, 3\).*\(4, 1\)",
    ),
    (
      lambda: jl.cosine_embedding_loss(X, jnp.ones((4, 2)), jnp.ones(4)),
      r"cosine_embedding_loss.*\(4, 3\).*\(4, 2\)",
    ),
    (
      lambda: jl.cosine_embedding_loss(X, X, jnp.ones(3)),
      r"cosine_embedding_loss.*targets.*\(3,\)",
    ),
    (
      lambda: jl.quantile_loss(X, X, quantiles=[0.1, 0.9]),
      r"quantile_loss.*quantiles.*\(2,\)",
    ),
    (
      lambda: jl.quantile_loss(X, jnp.ones(3), quantiles=[0.1, 0.5, 0.9]),
      r"quantile_loss.*\(4, 3\).*\(3,\)",
    ),
    (
      lambda: jl.root_mean_squared_error(
        jnp.ones((2, 3, 4)),
        jnp.ones((2, 3, 4)),
        axis=(1, 2),
        where=jnp.ones((2, 3), bool),
      ),
      r"root_mean_squared_error.*where.*\(2, 3\)",
    ),
  ],
)
def test_other_shapes_raise(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_integer_variances_raise():
  with pytest.raises(TypeError, match=r"gaussian_nll_loss.*variances"):
    jl.gaussian_nll_loss(X, X, jnp.ones((4, 3), jnp.int32))


@pytest.mark.parametrize(
  "name,kwargs,match",
  [
    ("huber_loss", {"delta": 0.0}, "huber_loss: `delta` must be > 0"),
    ("smooth_l1_loss", {"beta": -1.0}, "smooth_l1_loss: `beta` must be >= 0"),
    ("asymmetric_huber_loss", {"alpha": -1.0}, "`alpha` must be >= 0"),
    ("asymmetric_huber_loss", {"delta": -1.0}, "`delta` must be > 0"),
    ("quantile_loss", {"quantiles": 1.5}, r"quantile_loss: `quantiles`"),
    ("quantile_loss", {"quantiles": [0.1, 0.5, -0.1]}, "`quantiles`"),
    (
      "normalized_mean_absolute_error",
      {"normalizer": "median"},
      r"normalizer='median'; valid values are 'range', 'mean'",
    ),
    ("root_mean_squared_error", {"axis": 2}, "axis 2 is out of bounds"),
    ("cosine_similarity", {"epsilon": -1.0}, "`epsilon` must be >= 0"),
    ("poisson_nll_loss", {"log_input": "yes"}, "log_input='yes'"),
    ("poisson_nll_loss", {"eps": 0.0}, "`eps` must be > 0"),
    ("hinge_embedding_loss", {"margin": -1.0}, "`margin` must be >= 0"),
    ("absolute_error", {"reduction": "average"}, "valid values"),
  ],
)
def test_bad_options_raise(name, kwargs, match):
  x = jnp.ones((2, 3))
  with pytest.raises(ValueError, match=match):
    getattr(jl, name)(x, x, **kwargs)


def test_bad_options_of_three_array_losses_raise():
  x = jnp.ones((2, 3))
  with pytest.raises(ValueError, match="gaussian_nll_loss: unknown full=None"):
    jl.gaussian_nll_loss(x, x, x, full=None)
  with pytest.raises(ValueError, match="gaussian_nll_loss: `eps` must be > 0"):
    jl.gaussian_nll_loss(x, x, x, eps=-1.0)
  with pytest.raises(ValueError, match=r"`margin` must lie in \[-1, 1\]"):
    jl.cosine_embedding_loss(x, x, x[:, 0], margin=2.0)


# --------------------------------------------------------------------------- #
# jaxloss.checked


@pytest.mark.parametrize(
  "fn,args,kwargs,arg,what",
  [
    (
      jl.squared_log_error,
      ([0.5, -1.0], [0.0, 1.0]),
      {},
      "predictions",
      "must be > -1",
    ),
    (
      jl.squared_log_error,
      ([0.5, 1.0], [0.0, -3.0]),
      {},
      "targets",
      "must be > -1",
    ),
    (
      jl.gaussian_nll_loss,
      ([0.0, 1.0], [0.0, 0.0], [1.0, 0.0]),
      {},
      "variances",
      "must be > 0",
    ),
    (
      jl.poisson_nll_loss,
      ([0.0, 1.0], [1.0, -1.0]),
      {},
      "targets",
      "must be >= 0",
    ),
    (
      jl.poisson_nll_loss,
      ([-0.5, 1.0], [1.0, 1.0]),
      {"log_input": False},
      "inputs",
      "must be >= 0",
    ),
    (
      jl.quantile_loss,
      ([0.0, 1.0], [1.0, 1.0]),
      {"quantiles": jnp.array([0.5, 1.2])},
      "quantiles",
      "must lie in",
    ),
    (
      jl.cosine_embedding_loss,
      ([[1.0, 0.0]], [[0.0, 1.0]], [0]),
      {},
      "targets",
      "must hold -1 or \\+1",
    ),
    (
      jl.hinge_embedding_loss,
      ([1.0, 0.0], [1, 2]),
      {},
      "targets",
      "must hold -1 or \\+1",
    ),
    (
      jl.absolute_error,
      ([1.0, np.nan], [1.0, 1.0]),
      {},
      "predictions",
      "contains NaN",
    ),
  ],
)
def test_checked_catches_bad_values(fn, args, kwargs, arg, what):
  args = tuple(jnp.asarray(a) for a in args)
  checked_rejects(fn, *args, arg=arg, what=what, **kwargs)


def test_checked_passes_good_values():
  x = jnp.array([[0.5, 2.0]])
  assert_close(jl.checked(jl.squared_log_error)(x, x), [[0.0, 0.0]], RTOL, ATOL)
  assert_close(
    jl.checked(jl.gaussian_nll_loss)(x, x, x),
    jl.gaussian_nll_loss(x, x, x),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.checked(jl.poisson_nll_loss)(x, x, log_input=False),
    jl.poisson_nll_loss(x, x, log_input=False),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.checked(jl.poisson_nll_loss)(-x, x),
    jl.poisson_nll_loss(-x, x),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.checked(jl.hinge_embedding_loss)(x, jnp.array([[1, -1]])),
    [[0.5, 0.0]],
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("scale", [1e19, 1e30])
def test_metrics_at_huge_magnitudes_match_float64(scale):
  """Issue 19: RMSE squared errors of 1e19 (inf), and the quotient rule of
  normalized_mean_absolute_error / absolute_percentage_error squared the
  normaliser (gradient 0). Value and gradient equal the float64 ones."""
  p, t = _normal(50, 3, 4) * scale, (_normal(51, 3, 4) + 3) * scale
  p, t = F32(p), F32(t)
  for name, kwargs in [
    ("root_mean_squared_error", dict(axis=-1)),
    ("normalized_mean_absolute_error", dict(axis=-1)),
    ("normalized_mean_absolute_error", dict(normalizer="mean")),
    ("absolute_percentage_error", {}),
  ]:
    fn = getattr(jl, name)

    def total(a, b, fn=fn, kwargs=kwargs):
      return jnp.sum(fn(a, b, **kwargs))

    got = jax.value_and_grad(total, argnums=(0, 1))(p, t)
    with jax.enable_x64(True):
      want = jax.value_and_grad(total, argnums=(0, 1))(F64(p), F64(t))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      assert np.all(np.isfinite(g)), name
      assert_close(g, w, 1e-4, 1e-4 * np.max(np.abs(w)), what=name)
