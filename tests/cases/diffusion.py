"""Registry entries for jaxloss.diffusion.

Two cases: the VP weightings (Min-SNR on v, with ``alpha`` and ``sigma``
differentiated too) and EDM (its own target). ``convert_prediction`` and the
SNR helpers return arrays of their inputs' shape, not losses: HELPERS,
tested in tests/test_diffusion.py.
"""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

HELPERS = {"alpha_sigma_from_log_snr", "convert_prediction", "log_snr", "snr"}

DATA = (2, 3)  # per-example data shape


def _data(rng, n):
  return tuple(rng.normal(size=(n,) + DATA).astype(I.F32) for _ in range(3))


def _vp_inputs(rng, n):
  out, x0, noise = _data(rng, n)
  lam = rng.uniform(-6.0, 6.0, n)
  alpha = np.sqrt(1 / (1 + np.exp(-lam))).astype(I.F32)
  sigma = np.sqrt(1 / (1 + np.exp(lam))).astype(I.F32)
  return (out, x0, noise, alpha, sigma), {
    "prediction": "v",
    "weighting": "min_snr",
  }


def _vp_edges():
  """The ends of a schedule (sigma = 0, alpha = 0, exactly and nearly)."""
  zeros = np.zeros((4,) + DATA, I.F32)
  ones = np.ones_like(zeros)
  alpha = np.array([1.0, 0.0, 1e-30, 1.0], I.F32)
  sigma = np.array([0.0, 1.0, 1.0, 1e-30], I.F32)
  kwargs = {"prediction": "v", "weighting": "min_snr"}
  return [
    ((ones, zeros, ones, alpha, sigma), kwargs),
    ((zeros, ones, zeros, alpha, sigma), {**kwargs, "weighting": "sigmoid"}),
  ]


def _edm_inputs(rng, n):
  out, x0, noise = _data(rng, n)
  sigma = np.exp(rng.normal(-1.2, 1.2, n)).astype(I.F32)  # EDM's P_mean, P_std
  return (out, x0, noise, np.ones(n, I.F32), sigma), {"weighting": "edm"}


def _edm_edges():
  zeros = np.zeros((3,) + DATA, I.F32)
  sigma = np.array([0.0, 1e-30, 1e4], I.F32)
  return [
    (
      (zeros + 1, zeros, zeros + 1, np.ones(3, I.F32), sigma),
      {"weighting": "edm"},
    )
  ]


CASES = [
  LossCase(
    jl.diffusion_loss,
    _vp_inputs,
    name="diffusion_loss[v,min_snr]",
    float_args=(0, 1, 2, 3, 4),
    magnitude_args=(0, 1, 2),
    max_magnitude=1e15,
    edge_inputs=_vp_edges,
  ),
  LossCase(
    jl.diffusion_loss,
    _edm_inputs,
    name="diffusion_loss[edm]",
    float_args=(0, 1, 2),
    magnitude_args=(0, 1, 2),
    max_magnitude=1e15,
    edge_inputs=_edm_edges,
  ),
]
