"""Registry entries for jaxloss.self_supervised (imported from the family
itself). One block per group of losses; each block extends ``CASES``.

Barlow Twins, VICReg and KoLeo return one scalar, a batch statistic (no
per-example values to reduce, hence ``per_example=False`` and no
reductions); their ``where`` (examples removed from the statistics) is
tested in tests/test_self_supervised.py.
"""

import numpy as np

from jaxloss import self_supervised as jss
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

CASES: list[LossCase] = []

# --------------------------------------------------------------------------- #
# BYOL, SimSiam, Barlow Twins, VICReg, KoLeo

D = 5  # embedding dim
# VICReg's covariance penalty is quartic in the inputs (its docstring's range).
QUARTIC_RANGE = 1e9


def _views(rng, n):
  return (I.logits(rng, n, D, scale=0.5), I.logits(rng, n, D, scale=0.5)), {}


def _embeddings(rng, n):
  return (I.logits(rng, n, D, scale=0.5),), {}


def _view_edges():
  """Identical embeddings (zero variance), zero vectors, one example equal
  to another, large values, a batch of two."""
  same = np.ones((4, D), I.F32)
  zeros = np.zeros((4, D), I.F32)
  mixed = np.concatenate([zeros[:2], same[:2]])
  large = np.full((4, D), 1e3, I.F32) * np.array([[1], [-1], [1], [-1]], I.F32)
  two = np.arange(2 * D, dtype=I.F32).reshape(2, D)
  return [
    ((same, same), {}),
    ((zeros, zeros), {}),
    ((mixed, same), {}),
    ((large, -large), {}),
    ((two, two[::-1]), {}),
  ]


def _embedding_edges():
  return [((x,), {}) for (x, _), _ in _view_edges()]


def _not_a_matrix(inputs):
  (x,), kwargs = inputs
  return (x[0],), kwargs


CASES += [
  LossCase(jss.byol_loss, _views, float_args=(0,), edge_inputs=_view_edges),
  LossCase(jss.simsiam_loss, _views, float_args=(0,), edge_inputs=_view_edges),
  LossCase(
    jss.barlow_twins_loss,
    _views,
    float_args=(0, 1),
    edge_inputs=_view_edges,
    reductions=(),
    per_example=False,
  ),
  LossCase(
    jss.vicreg_loss,
    _views,
    float_args=(0, 1),
    edge_inputs=_view_edges,
    reductions=(),
    per_example=False,
    max_magnitude=QUARTIC_RANGE,
  ),
  LossCase(
    jss.koleo_loss,
    _embeddings,
    edge_inputs=_embedding_edges,
    reductions=(),
    per_example=False,
    wrong_shape=_not_a_matrix,
  ),
]
