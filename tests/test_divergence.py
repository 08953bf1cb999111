"""Value tests for jaxloss.divergence.

References: optax 0.2.8 itself for its four names; torch's ``kl_div``
semantics written out in float64 NumPy (torch is not a test dependency); the
formulas for the Jensen-Shannon and Gaussian divergences, the latter also by
numerical integration of the densities.
"""

import contextlib
import functools
import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.spatial import distance

import jaxloss as jl
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects

RTOL, ATOL = 1e-5, 1e-6
D = 5


def _distributions(seed, *shape, zeros=False):
  rng = np.random.default_rng(seed)
  p = rng.dirichlet(np.ones(shape[-1]), shape[:-1])
  if zeros:
    p = np.where(rng.random(shape) < 0.3, 0.0, p)
    p[..., 0] += 1e-3  # no all-zero row
    p = p / p.sum(-1, keepdims=True)
  return p.astype(np.float32)


def _log(x):
  return np.log(x).astype(np.float32)


def _log_with_zeros(p):
  """log p, with -1e4 standing for log 0."""
  return np.where(p > 0, np.log(np.where(p > 0, p, 1)), -1e4).astype(np.float32)


# --------------------------------------------------------------------------- #
# NumPy references (float64)


def torch_kl_div(inputs, target, reduction="none", log_target=False):
  """torch.nn.functional.kl_div(input, target): pointwise
  target * (log target - input), with xlogy's 0 where target == 0 (or
  exp(target) * (target - input) for log_target=True); "batchmean" is the sum
  divided by input.size(0), "mean" the mean over every element."""
  x, t = np.asarray(inputs, np.float64), np.asarray(target, np.float64)
  if log_target:
    pointwise = np.exp(t) * (t - x)
  else:
    safe = np.where(t > 0, t, 1.0)
    pointwise = np.where(t > 0, t * np.log(safe), 0.0) - t * x
  return {
    "none": pointwise,
    "sum": pointwise.sum(),
    "mean": pointwise.mean(),
    "batchmean": pointwise.sum() / x.shape[0],
  }[reduction]


def np_js(p, q):
  """1/2 sum p log(p/m) + 1/2 sum q log(q/m), m = (p + q)/2, 0 log 0 = 0."""
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  m = (p + q) / 2

  def kl(a):
    positive = a > 0
    ratio = np.where(positive, a, 1) / np.where(positive, m, 1)
    return np.where(positive, a * np.log(ratio), 0).sum(-1)

  return 0.5 * kl(p) + 0.5 * kl(q)


def np_gaussian_kl(mu, log_var, mu0=0.0, log_var0=0.0):
  """KL(N(mu, var) || N(mu0, var0)), summed over the last axis."""
  mu, log_var = np.asarray(mu, np.float64), np.asarray(log_var, np.float64)
  var, var0 = np.exp(log_var), np.exp(log_var0)
  return 0.5 * (np.log(var0 / var) + (var + (mu - mu0) ** 2) / var0 - 1).sum(-1)


def integrated_gaussian_kl(mu, var, mu0, var0):
  """KL of two 1-D Gaussians by the trapezoid rule on a fine grid."""
  sd = np.sqrt(var)
  x = np.linspace(mu - 12 * sd, mu + 12 * sd, 200_001)

  def log_density(x, mean, variance):
    return -0.5 * (np.log(2 * np.pi * variance) + (x - mean) ** 2 / variance)

  log_p = log_density(x, mu, var)
  return np.trapezoid(np.exp(log_p) * (log_p - log_density(x, mu0, var0)), x)


# --------------------------------------------------------------------------- #
# optax parity: values and signatures

OPTAX_NAMES = [
  "kl_divergence",
  "kl_divergence_with_log_targets",
  "generalized_kl_divergence",
  "convex_kl_divergence",
]


DEPRECATED = (
  r"The function convex_kl_divergence is deprecated\. Please use "
  r"generalized_kl_divergence instead\."
)


def _optax(name, *args, **kwargs):
  with _warns_if_deprecated(name):
    return getattr(optax.losses, name)(*args, **kwargs)


def _warns_if_deprecated(name):
  """``convex_kl_divergence`` (optax's and jaxloss's) must warn; the other
  names must not leak a warning (the suite does not ignore it)."""
  if name == "convex_kl_divergence":
    return pytest.warns(DeprecationWarning, match=DEPRECATED)
  return contextlib.nullcontext()


def _jl(name, *args, **kwargs):
  with _warns_if_deprecated(name):
    return getattr(jl, name)(*args, **kwargs)


def _inputs(name, seed, *shape):
  log_q = _log(_distributions(seed, *shape))
  if name == "kl_divergence_with_log_targets":
    return log_q, _log(_distributions(seed + 1, *shape))
  if name == "kl_divergence":
    return log_q, _distributions(seed + 1, *shape, zeros=True)
  # unnormalised measures for the generalized KL
  rng = np.random.default_rng(seed + 2)
  return (
    rng.normal(size=shape).astype(np.float32),
    rng.uniform(0.0, 2.0, size=shape).astype(np.float32),
  )


@pytest.mark.parametrize("name", OPTAX_NAMES)
@pytest.mark.parametrize("axis", [-1, 0, (1, 2), None])
def test_matches_optax(name, axis):
  first, second = _inputs(name, 0, 3, 4, D)
  assert_close(
    _jl(name, first, second, axis),
    _optax(name, first, second, axis),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("name", OPTAX_NAMES)
def test_element_where_matches_optax(name):
  first, second = _inputs(name, 1, 6, D)
  where = np.random.default_rng(3).random((6, D)) < 0.6
  where[2] = False  # one example with no elements
  assert_close(
    _jl(name, first, second, where=where),
    _optax(name, first, second, where=where),
    RTOL,
    ATOL,
  )
  assert_close(
    _jl(name, first, second, -1, where),
    _optax(name, first, second, -1, where),
    RTOL,
    ATOL,
  )


def test_example_where_drops_examples():
  log_q, p = _inputs("kl_divergence", 2, 6, D)
  keep = np.array([True, False, True, True, False, True])
  full = np.asarray(jl.kl_divergence(log_q, p), np.float64)
  assert_close(
    jl.kl_divergence(log_q, p, where=keep), np.where(keep, full, 0), RTOL, ATOL
  )
  assert_close(
    jl.kl_divergence(log_q, p, where=keep, reduction="mean"),
    full[keep].mean(),
    RTOL,
    ATOL,
  )
  # an example none of whose elements take part is left out of "mean"
  elements = np.repeat(keep[:, None], D, axis=1)
  assert_close(
    jl.kl_divergence(log_q, p, where=elements, reduction="mean"),
    full[keep].mean(),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("name", OPTAX_NAMES)
def test_lower_rank_where_drops_examples_unlike_optax(name):
  """The documented difference: with ``batch == dim`` a ``[batch]`` mask
  drops examples here; optax broadcasts it from the right (a mask of the
  distribution axis), which a ``[1, dim]`` mask says explicitly."""
  first, second = _inputs(name, 6, D, D)
  keep = np.array([True, False, True, True, False])
  full = np.asarray(_jl(name, first, second), np.float64)
  assert_close(
    _jl(name, first, second, where=keep), np.where(keep, full, 0), RTOL, ATOL
  )
  assert_close(
    _jl(name, first, second, where=keep[None]),
    _optax(name, first, second, where=keep),
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# torch kl_div


@pytest.mark.parametrize("shape", [(6, D), (3, 2, D)])
@pytest.mark.parametrize("reduction", ["none", "sum", "batchmean"])
def test_kl_divergence_matches_torch_kl_div(shape, reduction):
  log_q = _log(_distributions(4, *shape))
  p = _distributions(5, *shape, zeros=True)
  expected = torch_kl_div(log_q, p, reduction)
  if reduction == "none":
    expected = expected.sum(-1)  # torch returns the pointwise terms
  assert_close(
    jl.kl_divergence(log_q, p, reduction=reduction), expected, RTOL, ATOL
  )


def test_kl_divergence_with_log_targets_matches_torch_kl_div():
  log_q, log_p = _log(_distributions(6, 4, D)), _log(_distributions(7, 4, D))
  assert_close(
    jl.kl_divergence_with_log_targets(log_q, log_p, reduction="batchmean"),
    torch_kl_div(log_q, log_p, "batchmean", log_target=True),
    RTOL,
    ATOL,
  )


def test_kl_divergence_float64():
  log_q, p = _log(_distributions(8, 4, D)), _distributions(9, 4, D, zeros=True)
  with jax.enable_x64(True):
    out = jl.kl_divergence(
      jnp.asarray(log_q, jnp.float64),
      jnp.asarray(p, jnp.float64),
      reduction="batchmean",
    )
    assert out.dtype == jnp.float64
  assert_close(out, torch_kl_div(log_q, p, "batchmean"), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- #
# Jensen-Shannon


@pytest.mark.parametrize("zeros", [False, True])
def test_js_divergence_matches_formula(zeros):
  p = _distributions(10, 6, D, zeros=zeros)
  q = _distributions(11, 6, D, zeros=zeros)
  log_p, log_q = _log_with_zeros(p), _log_with_zeros(q)
  expected = np_js(p, q)
  assert_close(jl.js_divergence(log_p, log_q), expected, RTOL, ATOL)
  assert_close(
    jl.js_divergence(log_p, log_q),
    distance.jensenshannon(p, q, axis=-1) ** 2,
    RTOL,
    ATOL,
  )
  assert_close(
    jl.js_divergence(log_q, log_p), expected, RTOL, ATOL
  )  # symmetric
  grads = jax.grad(
    lambda a, b: jl.js_divergence(a, b, reduction="sum"), argnums=(0, 1)
  )(log_p, log_q)
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_js_divergence_bounds_and_axis():
  log_p = _log(_distributions(12, D, 3)).T.copy()
  log_q = _log(_distributions(13, D, 3)).T.copy()
  assert_close(
    jl.js_divergence(log_p, log_q, axis=0),
    np_js(np.exp(log_p.T), np.exp(log_q.T)),
    RTOL,
    ATOL,
  )
  disjoint = np.array([[0.0, -1e4], [-1e4, 0.0]], np.float32)
  assert_close(
    jl.js_divergence(disjoint[0], disjoint[1]), np.log(2), RTOL, ATOL
  )


def test_js_divergence_float64():
  p, q = _distributions(14, 3, D), _distributions(15, 3, D)
  with jax.enable_x64(True):
    out = jl.js_divergence(
      np.log(p.astype(np.float64)), np.log(q.astype(np.float64))
    )
    assert out.dtype == jnp.float64
  assert_close(out, np_js(p, q), rtol=1e-12, atol=1e-15)


def _recorded(fn, *args):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = fn(*args)
  return out, caught


def test_convex_kl_divergence_warns_like_optax():
  """optax deprecates the name (optax/_src/deprecations.py): one
  ``DeprecationWarning`` per call, message naming both functions, attributed
  to the caller's line (``stacklevel=2``)."""
  first, second = _inputs("convex_kl_divergence", 4, 3, D)
  ours, ours_caught = _recorded(jl.convex_kl_divergence, first, second)
  theirs, theirs_caught = _recorded(
    optax.losses.convex_kl_divergence, first, second
  )
  assert_close(ours, theirs, RTOL, ATOL)
  assert [(w.category, str(w.message)) for w in ours_caught] == [
    (w.category, str(w.message)) for w in theirs_caught
  ]
  assert len(ours_caught) == 1
  assert ours_caught[0].category is DeprecationWarning
  assert "generalized_kl_divergence" in str(ours_caught[0].message)
  # `_recorded` called it: the warning points to the calling line, not to
  # jaxloss (DeprecationWarning is shown by default only for __main__).
  assert ours_caught[0].filename == __file__
  assert ours_caught[0].filename == theirs_caught[0].filename


def test_convex_kl_divergence_warns_once_per_trace_under_jit():
  first, second = _inputs("convex_kl_divergence", 5, 3, D)
  jitted = jax.jit(jl.convex_kl_divergence)
  with pytest.warns(DeprecationWarning, match=DEPRECATED):
    traced = jitted(first, second)
  _, again = _recorded(jitted, first, second)  # cached: no new trace
  assert again == []
  with pytest.warns(DeprecationWarning, match=DEPRECATED):
    expected = jl.generalized_kl_divergence(first, second)
    eager = jl.convex_kl_divergence(first, second)
  assert_close(traced, expected, RTOL, ATOL)
  assert_close(eager, expected, RTOL, ATOL)


def test_convex_kl_divergence_keeps_its_name_rules_and_signature():
  """The warning wrapper keeps what ``@loss`` gives: errors and
  ``jaxloss.checked`` name ``convex_kl_divergence``; optax's signature."""
  assert list(inspect.signature(jl.convex_kl_divergence).parameters) == list(
    inspect.signature(jl.generalized_kl_divergence).parameters
  )
  with pytest.warns(DeprecationWarning, match=DEPRECATED):
    checked_rejects(
      jl.convex_kl_divergence,
      np.zeros(2, np.float32),
      np.float32([-1.0, 1.0]),
      arg="targets",
      what="must be >= 0",
    )


# --------------------------------------------------------------------------- #
# identical distributions and exact zeros


@pytest.mark.parametrize(
  "name", ["kl_divergence", "generalized_kl_divergence", "convex_kl_divergence"]
)
def test_targets_of_zero_contribute_zero_with_finite_gradients(name):
  p = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]], np.float32)
  log_q = _log([[0.2, 0.6, 0.2], [0.4, 0.2, 0.4]])
  fn = functools.partial(_jl, name)
  expected = torch_kl_div(log_q, p).sum(-1)
  if name != "kl_divergence":
    expected = expected + (np.exp(log_q.astype(np.float64)) - p).sum(-1)
  assert_close(fn(log_q, p), expected, RTOL, ATOL)
  grads = jax.grad(lambda a, b: fn(a, b, reduction="sum"), argnums=(0, 1))(
    log_q, p
  )
  assert all(np.all(np.isfinite(g)) for g in grads)
  assert_close(
    grads[0], (np.exp(log_q) - p) if name != "kl_divergence" else -p, RTOL, ATOL
  )


def test_identical_distributions_give_zero():
  p = _distributions(16, 4, D, zeros=True)
  log_p = _log_with_zeros(p)
  assert_close(jl.kl_divergence(log_p, p), np.zeros(4), atol=1e-6, rtol=RTOL)
  assert_close(
    jl.kl_divergence_with_log_targets(log_p, log_p), np.zeros(4), RTOL, ATOL
  )
  assert_close(
    jl.generalized_kl_divergence(log_p, p), np.zeros(4), atol=1e-6, rtol=RTOL
  )
  assert_close(jl.js_divergence(log_p, log_p), np.zeros(4), RTOL, ATOL)
  mean = np.random.default_rng(16).normal(size=(4, 3)).astype(np.float32)
  assert_close(
    jl.gaussian_kl_divergence(
      mean, mean, prior_mean=mean, prior_log_variance=mean
    ),
    np.zeros(4),
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# exact log 0 = -inf (issue 19 §2): 0 log 0 = 0, +inf where the mass is lost

INF = np.inf


def _value_and_grads(fn, *args):
  value = fn(*args)
  grads = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=tuple(range(len(args))))(
    *(jnp.asarray(a) for a in args)
  )
  return np.asarray(value), [np.asarray(g) for g in grads]


def _rel_entr_sum(log_q, p):
  """scipy's KL: sum of rel_entr(p, q), which is 0 where p == 0."""
  from scipy.special import rel_entr

  q = np.exp(np.asarray(log_q, np.float64))
  return rel_entr(np.asarray(p, np.float64), q).sum(-1)


@pytest.mark.parametrize(
  "name", ["kl_divergence", "generalized_kl_divergence", "convex_kl_divergence"]
)
def test_zero_target_on_log_zero_gives_zero_not_nan(name):
  """The issue's input: a masked vocabulary, log q = [0, -inf, -inf] with
  targets [1, 0, 0]: 0 with finite gradients (scipy's rel_entr: 0; optax
  and torch: NaN, jaxloss differs on purpose)."""
  log_q = np.array([[0.0, -INF, -INF], [np.log(0.5), np.log(0.5), -INF]])
  p = np.array([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0]])
  log_q, p = log_q.astype(np.float32), p.astype(np.float32)
  with _warns_if_deprecated(name):
    value, grads = _value_and_grads(getattr(jl, name), log_q, p)
  # q sums to 1 over the row, p too: the generalized KL's q - p sums to 0.
  assert_close(value, _rel_entr_sum(log_q, p), RTOL, ATOL)
  assert value[0] == 0.0
  assert all(np.all(np.isfinite(g)) for g in grads)
  assert_close(grads[0][:, 2], [0.0, 0.0])  # d/d log q at the -inf entries
  assert np.isnan(_optax(name, log_q[0], p[0]))  # what jaxloss improves on


@pytest.mark.parametrize(
  "name", ["kl_divergence", "generalized_kl_divergence", "convex_kl_divergence"]
)
def test_positive_target_on_log_zero_gives_inf_not_nan(name):
  log_q = np.array([-INF, 0.0, -INF], np.float32)
  p = np.array([1.0, 0.0, 0.0], np.float32)
  with _warns_if_deprecated(name):
    value, grads = _value_and_grads(getattr(jl, name), log_q, p)
  assert value == INF
  assert not any(np.any(np.isnan(g)) for g in grads)
  assert _rel_entr_sum(log_q, p) == INF  # scipy agrees


def test_kl_with_log_targets_log_zero_on_both_sides():
  """-inf on both sides contributes 0 (optax: NaN); a finite log target on a
  -inf log prediction gives +inf."""
  log_q = np.array([0.0, -INF, -INF], np.float32)
  log_p = np.array([np.log(0.5), np.log(0.5), -INF], np.float32)
  value, grads = _value_and_grads(
    jl.kl_divergence_with_log_targets, log_q, log_q
  )
  assert value == 0.0
  assert all(np.all(np.isfinite(g)) for g in grads)
  assert np.isnan(
    optax.losses.kl_divergence_with_log_targets(jnp.asarray(log_q), log_q)
  )
  value, grads = _value_and_grads(
    jl.kl_divergence_with_log_targets, log_q, log_p
  )
  assert value == INF
  assert not any(np.any(np.isnan(g)) for g in grads)
  swapped = jl.kl_divergence_with_log_targets(log_p, log_q)  # KL(q || p)
  assert_close(swapped, _rel_entr_sum(log_p, np.exp(log_q)), RTOL, ATOL)


@pytest.mark.parametrize(
  "p, q",
  [
    ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),  # disjoint: log 2
    ([1.0, 0.0, 0.0], [1.0, 0.0, 0.0]),  # -inf on both sides: 0
    ([0.5, 0.5, 0.0], [0.0, 0.3, 0.7]),
  ],
)
def test_js_divergence_with_log_zero_matches_scipy(p, q):
  p, q = np.array(p, np.float32), np.array(q, np.float32)
  with np.errstate(divide="ignore"):
    log_p, log_q = np.log(p), np.log(q)
  value, grads = _value_and_grads(jl.js_divergence, log_p, log_q)
  assert_close(value, distance.jensenshannon(p, q) ** 2, RTOL, ATOL)
  assert 0.0 <= value <= np.log(2) + 1e-6
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_generalized_kl_large_measures_do_not_overflow_apart():
  """p log p and p log q overflow float32 at p = q = 1e37 (8.5e38 each),
  their difference does not: identical measures give 0, not NaN; a
  measure whose exp(log q) overflows gives +inf (float64: inf), not NaN."""
  p = np.array([1e37, 2e36], np.float32)
  value, grads = _value_and_grads(jl.generalized_kl_divergence, np.log(p), p)
  assert_close(value, 0.0, atol=1e-6 * 1e37)
  assert all(np.all(np.isfinite(g)) for g in grads)
  log_q = np.array([1e30, 0.0], np.float32)
  targets = np.array([1e30, 1.0], np.float32)
  value, grads = _value_and_grads(jl.generalized_kl_divergence, log_q, targets)
  with np.errstate(over="ignore"):
    expected = np.sum(
      targets * (np.log(targets.astype(np.float64)) - log_q)
      + np.exp(log_q.astype(np.float64))
      - targets
    )
  assert expected == INF and value == INF
  assert not any(np.any(np.isnan(g)) for g in grads)


@pytest.mark.parametrize("name", OPTAX_NAMES + ["js_divergence"])
def test_empty_batch_batchmean_is_zero(name):
  """torch's kl_div divides by the batch size: NaN on an empty batch."""
  x = np.zeros((0, D), np.float32)
  with _warns_if_deprecated(name):
    value, grads = _value_and_grads(
      functools.partial(getattr(jl, name), reduction="batchmean"), x, x
    )
  assert value == 0.0
  assert all(g.shape == (0, D) for g in grads)


# --------------------------------------------------------------------------- #
# Gaussian KL


def test_gaussian_kl_matches_closed_form():
  rng = np.random.default_rng(17)
  mean, log_var = rng.normal(size=(2, 6, 4)).astype(np.float32)
  assert_close(
    jl.gaussian_kl_divergence(mean, log_var),
    np_gaussian_kl(mean, log_var),
    RTOL,
    ATOL,
  )
  mu0 = rng.normal(size=4).astype(np.float32)
  log_var0 = rng.normal(size=(6, 1)).astype(np.float32)
  assert_close(
    jl.gaussian_kl_divergence(
      mean,
      log_var,
      prior_mean=mu0,
      prior_log_variance=log_var0,
      reduction="mean",
    ),
    np_gaussian_kl(mean, log_var, mu0, log_var0).mean(),
    RTOL,
    ATOL,
  )


def test_gaussian_kl_matches_numerical_integration():
  mean = np.array([[0.3, -1.2], [2.0, 0.0]])
  log_var = np.array([[0.5, -0.7], [0.0, 1.1]])
  mu0, log_var0 = np.array([0.1, 0.4]), np.array([-0.3, 0.2])
  expected = [
    [
      integrated_gaussian_kl(
        mean[i, d], np.exp(log_var[i, d]), mu0[d], np.exp(log_var0[d])
      )
      for d in range(2)
    ]
    for i in range(2)
  ]
  with jax.enable_x64(True):
    out = jl.gaussian_kl_divergence(
      mean, log_var, prior_mean=mu0, prior_log_variance=log_var0
    )
    assert out.dtype == jnp.float64
  assert_close(out, np.sum(expected, axis=-1), rtol=1e-8, atol=1e-10)


def test_gaussian_kl_where_drops_latent_dimensions():
  rng = np.random.default_rng(18)
  mean, log_var = rng.normal(size=(2, 3, 4)).astype(np.float32)
  where = np.array([True, True, False, True])
  assert_close(
    jl.gaussian_kl_divergence(mean, log_var, where=np.tile(where, (3, 1))),
    np_gaussian_kl(mean[:, where], log_var[:, where]),
    RTOL,
    ATOL,
  )


def test_gaussian_kl_traced_prior_and_its_gradient():
  mean = np.array([[1.0, -2.0]], np.float32)
  log_var = np.zeros((1, 2), np.float32)
  fn = jax.jit(
    lambda m0: jl.gaussian_kl_divergence(
      mean, log_var, prior_mean=m0, reduction="sum"
    )
  )
  assert_close(fn(0.5), np_gaussian_kl(mean, log_var, 0.5).sum(), RTOL, ATOL)
  assert_close(jax.grad(fn)(0.5), -np.sum(mean - 0.5), RTOL, ATOL)


# --------------------------------------------------------------------------- #
# errors at trace time


def _raises(error, match, fn, *args, **kwargs):
  with pytest.raises(error, match=match):
    jax.eval_shape(lambda *a: fn(*a, **kwargs), *args)


def test_trace_time_errors():
  x = np.zeros((4, D), np.float32)
  _raises(
    ValueError,
    r"kl_divergence: .*`log_predictions` \(4, 5\).*"
    r"`targets` \(4, 4\)",
    jl.kl_divergence,
    x,
    x[:, :4],
  )
  _raises(
    TypeError,
    r"js_divergence: argument `log_q` must be a floating",
    jl.js_divergence,
    x,
    x.astype(np.int32),
  )
  with pytest.warns(DeprecationWarning, match=DEPRECATED):
    _raises(
      TypeError,
      r"convex_kl_divergence: argument `targets`",
      jl.convex_kl_divergence,
      x,
      x.astype(np.int32),
    )
  _raises(
    ValueError,
    r"kl_divergence_with_log_targets: axis 2 is out of "
    r"bounds",
    jl.kl_divergence_with_log_targets,
    x,
    x,
    axis=2,
  )
  _raises(
    ValueError,
    r"generalized_kl_divergence: unknown reduction",
    jl.generalized_kl_divergence,
    x,
    x,
    reduction="batch_mean",
  )
  _raises(
    ValueError,
    r"gaussian_kl_divergence: argument `prior_mean` of "
    r"shape \(3,\)",
    jl.gaussian_kl_divergence,
    x,
    x,
    prior_mean=np.zeros(3, np.float32),
  )
  _raises(
    ValueError,
    r"gaussian_kl_divergence: .*`log_variance`",
    jl.gaussian_kl_divergence,
    x,
    x[:3],
  )
  _raises(
    ValueError,
    r"kl_divergence: argument `where`",
    jl.kl_divergence,
    x,
    x,
    where=np.ones(3, bool),
  )


# --------------------------------------------------------------------------- #
# value checks


@pytest.mark.parametrize(
  "fn,args,arg,what",
  [
    (
      jl.kl_divergence,
      ([-1.0, -0.5], [0.5, 1.5]),
      "targets",
      r"must lie in \[0, 1\]",
    ),
    (
      jl.kl_divergence,
      ([0.5, -0.5], [0.5, 0.5]),
      "log_predictions",
      "must hold log-probabilities",
    ),
    (
      jl.generalized_kl_divergence,
      ([0.0, 1.0], [-1.0, 1.0]),
      "targets",
      "must be >= 0",
    ),
    (jl.js_divergence, ([0.1, -1.0], [-1.0, -1.0]), "log_p", ""),
    (
      jl.gaussian_kl_divergence,
      ([[np.nan, 1.0]], [[0.0, 0.0]]),
      "mean",
      "contains NaN",
    ),
  ],
)
def test_checked_catches_bad_values(fn, args, arg, what):
  args = tuple(np.asarray(a, np.float32) for a in args)
  checked_rejects(fn, *args, arg=arg, what=what)


def test_checked_passes_good_values():
  log_q, p = _log(_distributions(19, 2, D)), _distributions(20, 2, D)
  assert_close(
    jl.checked(jl.kl_divergence)(log_q, p),
    jl.kl_divergence(log_q, p),
    RTOL,
    ATOL,
  )


# --------------------------------------------------------------------------- #
# docstrings
