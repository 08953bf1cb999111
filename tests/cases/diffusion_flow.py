"""Registry entries for jaxloss.diffusion's flow matching.

``flow_matching_path`` (a point on the path, not a loss) and ``ot_coupling``
(integer indices from ott-jax's solvers) are HELPERS; tests/test_diffusion_
flow.py checks them.
"""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

HELPERS = {"flow_matching_path", "ot_coupling"}

KWARGS = {"path": "lipman", "sigma_min": 0.1}


def _flow_inputs(rng, n):
  shape = (n, 2, 3)
  return (
    rng.normal(size=shape).astype(I.F32),
    rng.normal(size=shape).astype(I.F32),
    rng.normal(size=shape).astype(I.F32),
    rng.uniform(0, 1, n).astype(I.F32),
  ), KWARGS


def _flow_edges():
  """A perfect velocity, zeros, the ends of time, huge data."""
  x0 = np.array([[[0.0, 1.0, -2.0], [3.0, 0.5, 0.0]]] * 2, I.F32)
  x1 = np.ones_like(x0)
  perfect = x1 - 0.9 * x0
  big = I.extreme_logits(2, 2, 3)
  ends = np.array([0.0, 1.0], I.F32)
  zeros = np.zeros_like(x0)
  return [
    ((perfect, x0, x1, ends), KWARGS),
    ((zeros, zeros.copy(), zeros.copy(), ends), KWARGS),
    ((big, -big, big.copy(), ends), {}),
  ]


CASES = [
  LossCase(
    jl.flow_matching_loss,
    _flow_inputs,
    float_args=(0, 1, 2),
    magnitude_args=(0, 1, 2),
    edge_inputs=_flow_edges,
  ),
]
