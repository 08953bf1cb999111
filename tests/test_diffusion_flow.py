"""Value tests for jaxloss.diffusion's flow matching.

References:

* torchcfm (atong01/conditional-flow-matching, commit cacd4dc; not
  installable here: it pulls torchvision): its flow matchers written out in
  float64 NumPy below, each naming the function it mirrors.
* diffusers 0.42.1 (installed): ``FlowMatchEulerDiscreteScheduler.scale_
  noise``, called with float64 tensors, and the flow-matching loss of its
  SD3 DreamBooth example (``examples/dreambooth/train_dreambooth_sd3.py``:
  ``target = noise - model_input``, the mean over each example), written out.
* ott-jax 0.6.0 (installed) called directly, and scipy's
  ``linear_sum_assignment`` as an independent exact solver.
"""

import functools
import itertools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from ott.geometry import pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn
from ott.tools import unreg

import jaxloss as jl
from jaxloss.diffusion import flow_matching
from jaxloss.testing import assert_close

F64 = np.float64


# --------------------------------------------------------------------------- #
# torchcfm, transcribed (torchcfm/conditional_flow_matching.py)


def _pad_t_like_x(t, x):
  """torchcfm ``pad_t_like_x``."""
  return np.reshape(t, (-1,) + (1,) * (x.ndim - 1))


def _cfm_sample_xt(x0, x1, t, epsilon, sigma):
  """``ConditionalFlowMatcher.sample_xt``: ``compute_mu_t`` (t x1 + (1 - t)
  x0) plus ``compute_sigma_t`` (the constant sigma) times epsilon."""
  t = _pad_t_like_x(t, x0)
  return t * x1 + (1 - t) * x0 + sigma * epsilon


def _cfm_flow(x0, x1, t, xt):
  """``ConditionalFlowMatcher.compute_conditional_flow``: x1 - x0."""
  del t, xt
  return x1 - x0


def _target_sample_xt(x1, t, epsilon, sigma):
  """``TargetConditionalFlowMatcher.sample_xt``: ``compute_mu_t`` (t x1) plus
  ``compute_sigma_t`` (1 - (1 - sigma) t) times epsilon; x0 unused."""
  t = _pad_t_like_x(t, x1)
  return t * x1 + (1 - (1 - sigma) * t) * epsilon


def _target_flow(x1, t, xt, sigma):
  """``TargetConditionalFlowMatcher.compute_conditional_flow``:
  (x1 - (1 - sigma) xt) / (1 - (1 - sigma) t)."""
  t = _pad_t_like_x(t, x1)
  return (x1 - (1 - sigma) * xt) / (1 - (1 - sigma) * t)


def _mse(v, u):
  """torchcfm's training loss ``torch.mean((vt - ut) ** 2)``, per example."""
  return np.mean((v - u) ** 2, axis=tuple(range(1, v.ndim)))


def test_flow_matching_matches_torchcfm_in_float64():
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    for shape, sigma in itertools.product([(5, 3), (4, 2, 3)], [0.0, 0.3]):
      x0, x1, v, eps = (rng.normal(size=shape) for _ in range(4))
      t = rng.uniform(0, 1, shape[0])
      t[0] = 0.0
      t[-1] = 1.0
      # I-CFM / rectified flow
      xt = _cfm_sample_xt(x0, x1, t, eps, sigma)
      noise = eps if sigma else None
      got = jl.flow_matching_path(x0, x1, t, sigma=sigma, noise=noise)
      assert got.dtype == F64
      assert_close(got, xt, rtol=1e-10, atol=1e-12, what=f"{shape} {sigma}")
      expected = _mse(v, _cfm_flow(x0, x1, t, xt))
      got = jl.flow_matching_loss(v, x0, x1, t)
      assert_close(got, expected, rtol=1e-10, atol=0, what=f"{shape}")
      # Lipman et al.: torchcfm's epsilon is jaxloss's x0; its sigma is
      # sigma_min (> 0 so that its target is finite at t = 1)
      sigma_min = sigma or 1e-3
      xt = _target_sample_xt(x1, t, x0, sigma_min)
      got = jl.flow_matching_path(x0, x1, t, path="lipman", sigma_min=sigma_min)
      assert_close(got, xt, rtol=1e-10, atol=1e-12, what=f"lipman {shape}")
      expected = _mse(v, _target_flow(x1, t, xt, sigma_min))
      got = jl.flow_matching_loss(
        v, x0, x1, t, path="lipman", sigma_min=sigma_min
      )
      assert_close(got, expected, rtol=1e-10, atol=0, what=f"lipman {shape}")
      # the gradient of the mean is 2 (v - u) / size
      u = x1 - (1 - sigma_min) * x0
      grad = jax.grad(
        lambda v: jl.flow_matching_loss(
          v, x0, x1, t, path="lipman", sigma_min=sigma_min, reduction="mean"
        )
      )(v)
      assert_close(grad, 2 * (v - u) / v.size, rtol=1e-10, atol=1e-14)


def test_lipman_path_at_t_one_with_zero_sigma_min_is_finite():
  """torchcfm's target divides by 1 - (1 - sigma) t, 0 at t = 1 when
  sigma = 0; the closed form x1 - x0 does not."""
  x0, x1 = jnp.ones((2, 3)), 2 * jnp.ones((2, 3))
  t = jnp.array([1.0, 1.0])
  v = jnp.zeros((2, 3))
  value, grad = jax.value_and_grad(
    lambda v: jl.flow_matching_loss(
      v, x0, x1, t, path="lipman", reduction="sum"
    )
  )(v)
  assert_close(value, 2.0)
  assert np.all(np.isfinite(grad))
  assert_close(jl.flow_matching_path(x0, x1, t, path="lipman"), x1)


# --------------------------------------------------------------------------- #
# diffusers' SD3 convention: x = (1 - s) data + s noise, target noise - data


@pytest.fixture(scope="module")
def diffusers_scheduler():
  torch = pytest.importorskip("torch")
  schedulers = pytest.importorskip("diffusers.schedulers")
  scheduler = schedulers.FlowMatchEulerDiscreteScheduler(
    num_train_timesteps=1000, shift=3.0
  )
  return torch, scheduler


def test_diffusers_sd3_convention_converts_with_one_minus_sigma(
  diffusers_scheduler,
):
  torch, scheduler = diffusers_scheduler
  rng = np.random.default_rng(1)
  data, noise, pred = (rng.normal(size=(4, 2, 3, 3)) for _ in range(3))
  index = np.array([0, 250, 600, 999])
  timesteps = scheduler.timesteps[index]
  noisy = scheduler.scale_noise(
    torch.tensor(data), timesteps, torch.tensor(noise)
  ).numpy()
  s = scheduler.sigmas[index].double().numpy()
  with jax.enable_x64(True):
    path = jl.flow_matching_path(noise, data, 1.0 - s)
    assert_close(path, noisy, rtol=1e-10, atol=1e-12)
    # train_dreambooth_sd3.py: target = noise - model_input; per-example mean
    # of the squared error (weighting_scheme "none")
    expected = np.mean((pred - (noise - data)) ** 2, axis=(1, 2, 3))
    got = jl.flow_matching_loss(-pred, noise, data, 1.0 - s)
    assert_close(got, expected, rtol=1e-10, atol=0)


# --------------------------------------------------------------------------- #
# options and errors


def test_flow_matching_rejects_bad_options_and_shapes():
  x = jnp.zeros((3, 2))
  t = jnp.full(3, 0.5)
  bad = [
    (lambda: jl.flow_matching_loss(x, x, x, t, path="vp"), "unknown path"),
    (
      lambda: jl.flow_matching_loss(x, x, x, t, sigma_min=0.1),
      "only by path='lipman'",
    ),
    (
      lambda: jl.flow_matching_loss(x, x, x, t, path="lipman", sigma_min=2.0),
      "sigma_min",
    ),
    (lambda: jl.flow_matching_loss(x, x, x, jnp.zeros(2)), "`t`"),
    (lambda: jl.flow_matching_loss(x, x, x, jnp.zeros((3, 1))), "`t`"),
    (lambda: jl.flow_matching_loss(x[:, :1], x, x, t), "same shape"),
    (lambda: jl.flow_matching_path(x, x, t, sigma=0.1), "pass `noise`"),
    (
      lambda: jl.flow_matching_path(x, x, t, path="lipman", noise=x),
      "only by path='linear'",
    ),
    (lambda: jl.flow_matching_path(x, x, t, sigma=-1.0, noise=x), "sigma"),
    (lambda: jl.flow_matching_path(x, x[:2], t), "same shape"),
  ]
  for call, message in bad:
    with pytest.raises(ValueError, match=message) as info:
      call()
    assert str(info.value).startswith("flow_matching_"), info.value
  with pytest.raises(TypeError, match="`t`"):
    jl.flow_matching_loss(x, x, x, jnp.zeros(3, jnp.int32))


def test_flow_matching_scalar_time_and_traced_hyper_parameters():
  rng = np.random.default_rng(2)
  x0, x1, v, eps = (rng.normal(size=(3, 2)).astype(np.float32) for _ in "abcd")
  path = jax.jit(
    lambda s, t: jl.flow_matching_path(x0, x1, t, sigma=s, noise=eps)
  )(0.2, 0.3)
  assert_close(path, 0.7 * x0 + 0.3 * x1 + 0.2 * eps, rtol=1e-6)
  loss = jax.jit(
    lambda m: jl.flow_matching_loss(v, x0, x1, 0.3, path="lipman", sigma_min=m)
  )(0.25)
  assert_close(loss, np.mean((v - (x1 - 0.75 * x0)) ** 2, axis=1), rtol=1e-6)


# --------------------------------------------------------------------------- #
# ot_coupling


def _sq_cost(x0, x1):
  a = np.reshape(x0, (len(x0), -1)).astype(F64)
  b = np.reshape(x1, (len(x1), -1)).astype(F64)
  return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


@jax.jit
def _ott_hungarian(a, b):
  """ott-jax's ``unreg.hungarian``'s paired indices ``[2, n]``."""
  with jax.numpy_rank_promotion("allow"):  # the suite raises; ott needs it
    _, out = unreg.hungarian(pointcloud.PointCloud(a, b))
  return out.paired_indices


@jax.jit
def _ott_sinkhorn_plan(a, b, epsilon):
  """ott-jax's entropic plan (``Sinkhorn`` with its defaults)."""
  with jax.numpy_rank_promotion("allow"):
    geom = pointcloud.PointCloud(a, b, epsilon=epsilon)
    return sinkhorn.Sinkhorn()(linear_problem.LinearProblem(geom)).matrix


def _is_permutation(p, n):
  return sorted(np.asarray(p).tolist()) == list(range(n))


def test_exact_ot_coupling_is_the_optimal_permutation():
  rng = np.random.default_rng(3)
  for shape in [(8, 2), (6, 2, 3)]:
    x0 = rng.normal(size=shape).astype(np.float32)
    x1 = (rng.normal(size=shape) + 1.5).astype(np.float32)
    n = shape[0]
    perm = np.asarray(jl.ot_coupling(x0, x1))
    assert perm.dtype == np.int32 and _is_permutation(perm, n), perm
    cost = _sq_cost(x0, x1)
    # scipy's exact solver on the float64 costs (torchcfm's
    # OTPlanSampler.sample_plan_with_scipy): rows come back as 0..n-1
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    assert (rows == np.arange(n)).all()
    np.testing.assert_array_equal(perm, cols)
    # ott-jax called directly
    i, j = np.asarray(_ott_hungarian(x0.reshape(n, -1), x1.reshape(n, -1)))
    np.testing.assert_array_equal(perm[i], j)
    # lower mean squared distance than the identity and random pairings
    paired = cost[np.arange(n), perm].mean()
    assert paired < np.diag(cost).mean()
    shuffles = [rng.permutation(n) for _ in range(20)]
    assert all(paired <= cost[np.arange(n), p].mean() + 1e-9 for p in shuffles)
    # jit gives the same indices
    np.testing.assert_array_equal(jax.jit(jl.ot_coupling)(x0, x1), perm)


def test_entropic_ot_coupling_is_the_argmax_of_otts_sinkhorn_plan():
  rng = np.random.default_rng(4)
  x0 = rng.normal(size=(12, 2)).astype(np.float32)
  x1 = (rng.normal(size=(12, 2)) + 1.0).astype(np.float32)
  exact = np.asarray(jl.ot_coupling(x0, x1))
  cost = _sq_cost(x0, x1)
  for epsilon in [1e-2, 3e-2, 1.0]:
    got = np.asarray(jl.ot_coupling(x0, x1, epsilon=epsilon))
    plan = _ott_sinkhorn_plan(x0, x1, epsilon)
    np.testing.assert_array_equal(got, np.argmax(np.asarray(plan), axis=1))
    assert got.dtype == np.int32
    assert cost[np.arange(12), got].mean() < np.diag(cost).mean()
    if epsilon < 0.1:  # small against the cost gaps: the exact assignment
      assert _is_permutation(got, 12)
      np.testing.assert_array_equal(got, exact)
    else:  # as documented: a large epsilon pairs some x1 twice
      assert not _is_permutation(got, 12)


def test_ot_coupling_ties_sizes_and_errors(monkeypatch):
  # ties: x1 holds each point twice; any optimal permutation will do
  x0 = np.array([[0.0], [0.1], [2.0], [2.1]], np.float32)
  x1 = np.array([[2.0], [0.0], [2.0], [0.0]], np.float32)
  perm = np.asarray(jl.ot_coupling(x0, x1))
  assert _is_permutation(perm, 4)
  cost = _sq_cost(x0, x1)
  rows, cols = scipy.optimize.linear_sum_assignment(cost)
  assert_close(cost[np.arange(4), perm].sum(), cost[rows, cols].sum())
  np.testing.assert_array_equal(jl.ot_coupling(x0, x1), perm)  # repeatable
  # 0 and 1 points
  assert jl.ot_coupling(np.zeros((0, 2)), np.zeros((0, 2))).shape == (0,)
  np.testing.assert_array_equal(jl.ot_coupling(x0[:1], x1[:1]), [0])
  # errors name the function and the argument
  with pytest.raises(ValueError, match="ot_coupling: .*as many points"):
    jl.ot_coupling(x0, x1[:3])
  with pytest.raises(ValueError, match="ot_coupling: .*same shape"):
    jl.ot_coupling(np.zeros((4, 2)), np.zeros((4, 3)))
  with pytest.raises(ValueError, match="epsilon"):
    jl.ot_coupling(x0, x1, epsilon=0.0)
  with pytest.raises(TypeError, match="`x1`"):
    jl.ot_coupling(x0, np.zeros((4, 1), np.int32))
  # without ott-jax: an ImportError that says what to install (a fresh cache
  # of the lazily imported solvers, so the import runs again)
  fresh = functools.cache(flow_matching._ott_solvers.__wrapped__)
  monkeypatch.setattr(flow_matching, "_ott_solvers", fresh)
  monkeypatch.setitem(sys.modules, "ott.tools", None)
  with pytest.raises(ImportError, match=r"pip install jaxloss\[ot\]"):
    jl.ot_coupling(x0, x1)
