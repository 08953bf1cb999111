"""Registry entries for jaxloss.divergence."""

import numpy as np
from jax.scipy.special import log_softmax

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

D = 4  # distribution size
REDUCTIONS = ("none", "sum", "mean", "batchmean")


def log_distributions(rng, *shape):
  return np.log(I.distributions(rng, *shape)).astype(I.F32)


def _probabilities(rng, n):
  return (log_distributions(rng, n, D), I.distributions(rng, n, D)), {}


def _log_pair(rng, n):
  return (log_distributions(rng, n, D), log_distributions(rng, n, D)), {}


def _measures(rng, n):
  log_q = rng.normal(size=(n, D)).astype(I.F32)
  return (log_q, rng.uniform(0.05, 2.0, size=(n, D)).astype(I.F32)), {}


def _extreme_log_probabilities():
  """log-probabilities of 0 and about -2e4 (log_softmax of ±1e4 logits)."""
  return np.asarray(log_softmax(I.extreme_logits(4, D), axis=-1), I.F32)


def _one_hot_logs():
  """log of one-hot distributions, with -1e4 standing for log 0."""
  return np.where(np.eye(D, dtype=bool), 0.0, -1e4).astype(I.F32)


def _masked_logs():
  """Exact log 0 = -inf (a masked vocabulary): log of one-hot rows, and of
  rows with two classes of mass 1/2 (the second one a one-hot row's)."""
  one_hot = np.where(np.eye(D, dtype=bool), 0.0, -np.inf).astype(I.F32)
  halves = np.eye(D, dtype=bool) | np.roll(np.eye(D, dtype=bool), 1, axis=1)
  return one_hot, np.where(halves, np.log(0.5), -np.inf).astype(I.F32)


def _edge_kl():
  one_hot = np.eye(D, dtype=I.F32)
  uniform = np.full((4, D), 1 / D, I.F32)
  masked_one_hot, masked_halves = _masked_logs()
  return [
    ((_extreme_log_probabilities(), one_hot), {}),
    ((_one_hot_logs(), one_hot), {}),  # identical: KL = 0
    ((np.log(uniform), one_hot), {}),
    ((_extreme_log_probabilities(), np.zeros((4, D), I.F32)), {}),
    # 0 log 0 = 0 at log q = -inf (issue 19 §2): KL 0 and log 2.
    ((masked_one_hot, one_hot), {}),
    ((masked_halves, one_hot), {}),
  ]


def _edge_log_pair(disjoint_infinite=False):
  """Finite logs (log 0 as -1e4), then exact -inf on both sides; disjoint
  -inf supports only where the divergence stays finite (Jensen-Shannon)."""

  def edges():
    extreme, one_hot = _extreme_log_probabilities(), _one_hot_logs()
    masked_one_hot, masked_halves = _masked_logs()
    out = [
      ((extreme, one_hot), {}),
      ((one_hot, one_hot), {}),
      ((one_hot, one_hot[::-1].copy()), {}),
      ((extreme, extreme), {}),
      ((masked_one_hot, masked_one_hot), {}),  # -inf on both sides: 0
      ((masked_halves, masked_one_hot), {}),  # log 2
    ]
    if disjoint_infinite:
      out.append(((masked_one_hot, masked_one_hot[::-1].copy()), {}))
    return out

  return edges


def _edge_measures():
  targets = np.tile([0.0, 1.0, 2.0, 0.0], (4, 1)).astype(I.F32)
  log_q = np.tile([-1e4, 0.0, 50.0, 1.0], (4, 1)).astype(I.F32)
  masked = np.where(targets > 0, log_q, -np.inf).astype(I.F32)
  return [
    ((log_q, targets), {}),
    ((_extreme_log_probabilities(), targets), {}),
    ((np.log(targets + 1e-30).astype(I.F32), targets), {}),
    ((masked, targets), {}),  # 0 log 0 = 0 at log q = -inf
  ]


def _gaussians(rng, n, **kwargs):
  return (
    (
      rng.normal(size=(n, 3)).astype(I.F32),
      rng.normal(size=(n, 3)).astype(I.F32),
    ),
    kwargs,
  )


def _edge_gaussians():
  log_variance = np.tile([-50.0, 50.0, 0.0], (4, 1)).astype(I.F32)
  return [
    ((I.extreme_logits(4, 3), log_variance), {}),
    ((np.zeros((4, 3), I.F32), np.zeros((4, 3), I.F32)), {}),
  ]


CASES = [
  LossCase(
    jl.kl_divergence,
    _probabilities,
    float_args=(0, 1),
    reductions=REDUCTIONS,
    edge_inputs=_edge_kl,
  ),
  LossCase(
    jl.kl_divergence,
    lambda rng, n: (
      (
        log_distributions(rng, n, 2, D).reshape(n, 2, D),
        I.distributions(rng, n, 2, D),
      ),
      {"axis": (1, 2)},
    ),
    name="kl_divergence[axis=(1,2)]",
    float_args=(0, 1),
    reductions=REDUCTIONS,
  ),
  LossCase(
    jl.kl_divergence_with_log_targets,
    _log_pair,
    float_args=(0, 1),
    reductions=REDUCTIONS,
    edge_inputs=_edge_log_pair(),
  ),
  LossCase(
    jl.generalized_kl_divergence,
    _measures,
    float_args=(0, 1),
    reductions=REDUCTIONS,
    edge_inputs=_edge_measures,
  ),
  LossCase(
    jl.convex_kl_divergence,
    _measures,
    float_args=(0, 1),
    reductions=REDUCTIONS,
    edge_inputs=_edge_measures,
  ),
  LossCase(
    jl.js_divergence,
    _log_pair,
    float_args=(0, 1),
    reductions=REDUCTIONS,
    edge_inputs=_edge_log_pair(disjoint_infinite=True),
  ),
  LossCase(
    jl.gaussian_kl_divergence,
    _gaussians,
    float_args=(0, 1),
    edge_inputs=_edge_gaussians,
  ),
  LossCase(
    jl.gaussian_kl_divergence,
    lambda rng, n: _gaussians(
      rng,
      n,
      prior_mean=np.array([0.5, -1.0, 0.0], I.F32),
      prior_log_variance=-0.5,
    ),
    name="gaussian_kl_divergence[prior]",
    float_args=(0, 1),
    edge_inputs=_edge_gaussians,
  ),
]
