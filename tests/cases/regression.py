"""Registry entries for jaxloss.regression."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

D = 4  # features / vector size / quantiles


def _normal(rng, *shape):
  return rng.normal(size=shape).astype(I.F32)


def _pair(rng, n):
  return (_normal(rng, n, 3), _normal(rng, n, 3)), {}


def _predictions_only(rng, n):
  return (_normal(rng, n, 3),), {}


def _vectors(rng, n):
  return (_normal(rng, n, D), _normal(rng, n, D)), {}


def _positive_targets(rng, n):
  """Targets in [1, 3], so that a mean normaliser is far from 0."""
  return (_normal(rng, n, D), rng.uniform(1, 3, (n, D)).astype(I.F32)), {}


def _above_minus_one(rng, n):
  """Values in [0, 3]: in the domain (> -1) at every scale of the
  huge-magnitude check; values in (-1, 0) are among the edge inputs."""
  return tuple(rng.uniform(0.0, 3.0, (n, 3)).astype(I.F32) for _ in "pt"), {}


def _zero_error():
  """Predictions equal to targets, including zeros."""
  x = np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 0.0]], I.F32)
  return [((x, x.copy()), {})]


def _large_errors():
  return [((I.extreme_logits(2, 3), np.zeros((2, 3), I.F32)), {})]


def _elementwise_edges():
  return _zero_error() + _large_errors()


def _zero_vectors():
  """Zero vectors on either side, identical and opposite vectors."""
  a = np.array([[0.0] * D, [1.0, 2.0, 0.0, 0.0], [0.0] * D, [1.0] * D], I.F32)
  b = np.array([[1.0] * D, [0.0] * D, [0.0] * D, [-1.0] * D], I.F32)
  return [((a, b), {}), ((a, a.copy()), {})]


def _constant_targets():
  """Constant (and zero) targets, with zero and nonzero errors."""
  t = np.array([[2.0] * D, [0.0] * D, [1.0] * D], I.F32)
  p = np.array([[2.0] * D, [1.0, -1.0, 0.0, 3.0], [1.0] * D], I.F32)
  return [((p, t), {}), ((t, t.copy()), {})]


def _percentage_edges():
  t = np.array([[0.0, 0.0, 1e-30], [0.0, -3.0, 2.0]], I.F32)
  p = np.array([[0.0, 5.0, 1.0], [1e4, -3.0, 2.0]], I.F32)
  return [((p, t), {})]


def _log_error_edges():
  """Zero error, values next to -1, and large values."""
  p = np.array([[0.0, -0.999, 1e4], [0.0, 0.0, -0.5]], I.F32)
  t = np.array([[0.0, 1e4, -0.999], [0.0, -0.999, -0.5]], I.F32)
  return [((p, t), {})]


def _quantile_vector(rng, n):
  return (_normal(rng, n, 3), _normal(rng, n, 3)), {
    "quantiles": np.array([0.1, 0.5, 0.9], I.F32)
  }


def _quantile_shared_target(rng, n):
  """One target per example, three quantile predictions."""
  return (_normal(rng, n, 3), _normal(rng, n)), {
    "quantiles": np.array([0.1, 0.5, 0.9], I.F32)
  }


def _quantile_edges():
  x = np.array([[0.0, 1.0, -2.0]], I.F32)
  return [((x, x.copy()), {"quantiles": np.array([0.0, 0.5, 1.0], I.F32)})]


def _poisson_log(rng, n):
  return (_normal(rng, n, 3), rng.integers(0, 6, (n, 3)).astype(I.F32)), {}


def _poisson_rates(rng, n):
  return (
    rng.uniform(0.1, 4.0, (n, 3)).astype(I.F32),
    rng.integers(0, 6, (n, 3)).astype(I.F32),
  ), {}


def _poisson_edges():
  """Targets of 0 and 1 (the Stirling boundary), rates of 0, tiny log-rates."""
  targets = np.array([[0.0, 1.0, 2.0], [0.0, 0.0, 7.0]], I.F32)
  log_rates = np.array([[0.0, 0.0, 1.0], [-50.0, 20.0, 0.0]], I.F32)
  rates = np.array([[0.0, 1e-9, 3.0], [0.0, 0.0, 1.0]], I.F32)
  return [((log_rates, targets), {}), ((rates, targets), {"log_input": False})]


def _gaussian(variance_shape):
  def make(rng, n):
    return (
      _normal(rng, n, 3),
      _normal(rng, n, 3),
      rng.uniform(0.2, 2.0, (n,) + variance_shape).astype(I.F32),
    ), {}

  return make


def _gaussian_edges():
  """Variances of 0, below eps and negative; zero error."""
  means = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], I.F32)
  targets = np.array([[0.0, 0.0, 2.0], [1.0, 1.0, 1.0]], I.F32)
  variances = np.array([[0.0, 1e-9, -1.0], [1e-7, 0.0, 3.0]], I.F32)
  return [((means, targets, variances), {})]


def _embedding_pairs(rng, n):
  return (
    _normal(rng, n, D),
    _normal(rng, n, D),
    np.where(rng.random(n) < 0.5, 1, -1).astype(np.int32),
  ), {}


def _embedding_edges():
  (a, b), _ = _zero_vectors()[0]
  signs = np.array([1, -1, 1, -1], np.int32)
  return [((a, b, signs), {}), ((a, a.copy(), -signs), {})]


def _hinge_inputs(rng, n):
  return (
    rng.uniform(0, 2, (n, 3)).astype(I.F32),
    np.where(rng.random((n, 3)) < 0.5, 1, -1).astype(np.int32),
  ), {}


def _hinge_edges():
  x = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]], I.F32)
  return [((x, np.array([[1, -1, -1], [-1, 1, -1]], np.int32)), {})]


def _with(make, **kwargs):
  def inputs(rng, n):
    args, base = make(rng, n)
    return args, {**base, **kwargs}

  return inputs


def _elementwise(fn, make=_pair, name=None, **kwargs):
  return LossCase(
    fn,
    _with(make, **kwargs),
    name=name,
    float_args=(0, 1),
    edge_inputs=_elementwise_edges,
  )


def _optax_none_targets(fn):
  # targets=None (optax's default): the loss of the predictions alone. The
  # path is one helper shared by the four optax drop-ins; two are registered.
  return LossCase(
    fn,
    _predictions_only,
    name=f"{fn.__name__}[targets=None]",
    edge_inputs=lambda: [((x,), {}) for (x, _), _ in _elementwise_edges()],
  )


CASES = [
  _elementwise(jl.squared_error),
  _optax_none_targets(jl.squared_error),
  _elementwise(jl.l2_loss),
  _elementwise(jl.huber_loss),
  _optax_none_targets(jl.huber_loss),
  _elementwise(jl.log_cosh),
  LossCase(
    jl.cosine_similarity, _vectors, float_args=(0, 1), edge_inputs=_zero_vectors
  ),
  LossCase(
    jl.cosine_similarity,
    lambda rng, n: (
      (_normal(rng, n, 2, 3), _normal(rng, n, 2, 3)),
      {"axis": (1, 2), "epsilon": 0.1},
    ),
    name="cosine_similarity[axis=(1,2),epsilon]",
    float_args=(0, 1),
  ),
  LossCase(
    jl.cosine_distance, _vectors, float_args=(0, 1), edge_inputs=_zero_vectors
  ),
  _elementwise(jl.absolute_error),
  # axis=None (the default) reduces every element to one scalar, the RMSE of
  # the batch: there are no per-example values to mask, weight or reduce.
  LossCase(
    jl.root_mean_squared_error,
    _vectors,
    float_args=(0, 1),
    per_example=False,
    edge_inputs=_zero_error,
  ),
  LossCase(
    jl.root_mean_squared_error,
    _with(_vectors, axis=-1),
    name="root_mean_squared_error[axis=-1]",
    float_args=(0, 1),
    edge_inputs=lambda: [(a, {"axis": -1}) for a, _ in _zero_error()],
  ),
  LossCase(
    jl.normalized_mean_absolute_error,
    _with(_vectors, axis=-1),
    name="normalized_mean_absolute_error[range,axis=-1]",
    float_args=(0, 1),
    edge_inputs=lambda: [(a, {"axis": -1}) for a, _ in _constant_targets()],
  ),
  LossCase(
    jl.normalized_mean_absolute_error,
    _with(_positive_targets, axis=-1, normalizer="mean"),
    name="normalized_mean_absolute_error[mean,axis=-1]",
    float_args=(0, 1),
    edge_inputs=lambda: [
      (a, {"axis": -1, "normalizer": "mean"}) for a, _ in _constant_targets()
    ],
  ),
  # axis=None: one scalar for the whole batch (see root_mean_squared_error).
  LossCase(
    jl.normalized_mean_absolute_error,
    _vectors,
    float_args=(0, 1),
    per_example=False,
    edge_inputs=_constant_targets,
  ),
  LossCase(
    jl.absolute_percentage_error,
    _positive_targets,
    float_args=(0, 1),
    edge_inputs=_percentage_edges,
  ),
  LossCase(
    jl.squared_log_error,
    _above_minus_one,
    float_args=(0, 1),
    edge_inputs=_log_error_edges,
  ),
  _elementwise(jl.smooth_l1_loss),
  _elementwise(jl.smooth_l1_loss, name="smooth_l1_loss[beta=0]", beta=0.0),
  _elementwise(
    jl.asymmetric_huber_loss,
    name="asymmetric_huber_loss[delta=0.5,alpha=2]",
    delta=0.5,
    alpha=2.0,
  ),
  _elementwise(jl.quantile_loss, name="quantile_loss[0.3]", quantiles=0.3),
  LossCase(
    jl.quantile_loss,
    _quantile_vector,
    name="quantile_loss[vector]",
    float_args=(0, 1),
    edge_inputs=_quantile_edges,
  ),
  LossCase(
    jl.quantile_loss,
    _quantile_shared_target,
    name="quantile_loss[vector,shared_target]",
    float_args=(0, 1),
  ),
  LossCase(jl.poisson_nll_loss, _poisson_log, edge_inputs=_poisson_edges),
  LossCase(
    jl.poisson_nll_loss,
    _with(_poisson_rates, log_input=False, full=True),
    name="poisson_nll_loss[rates,full]",
    edge_inputs=lambda: [
      (a, {**k, "log_input": False, "full": True})
      for a, k in _poisson_edges()[1:]
    ],
  ),
  LossCase(
    jl.gaussian_nll_loss,
    _gaussian((3,)),
    float_args=(0, 1, 2),
    edge_inputs=_gaussian_edges,
  ),
  LossCase(
    jl.gaussian_nll_loss,
    _with(_gaussian((1,)), full=True),
    name="gaussian_nll_loss[var=(n,1),full]",
    float_args=(0, 1, 2),
  ),
  LossCase(
    jl.gaussian_nll_loss,
    _gaussian(()),
    name="gaussian_nll_loss[var=(n,)]",
    float_args=(0, 1, 2),
  ),
  LossCase(
    jl.cosine_embedding_loss,
    _with(_embedding_pairs, margin=0.2),
    float_args=(0, 1),
    edge_inputs=_embedding_edges,
  ),
  LossCase(jl.hinge_embedding_loss, _hinge_inputs, edge_inputs=_hinge_edges),
]


# ---- issue 22: lp_loss ------------------------------------------------------
# p = 1.5 in the random case; the edges (zero errors, errors of 1e4) also run
# p = 0.5, whose derivative is unbounded at zero error (the gradient is 0).


def _lp_edges():
  return [(a, {"p": p}) for a, _ in _elementwise_edges() for p in (0.5, 3.0)]


CASES.append(
  LossCase(
    jl.lp_loss,
    _with(_pair, p=1.5),
    float_args=(0, 1),
    edge_inputs=_lp_edges,
  )
)
