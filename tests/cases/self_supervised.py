"""Registry entries for jaxloss.self_supervised (imported from the family
itself). One block per group of losses; each block extends ``CASES``.

Barlow Twins, VICReg and KoLeo return one scalar, a batch statistic (no
per-example values to reduce, hence ``per_example=False`` and no
reductions); their ``where`` (examples removed from the statistics) is
tested in tests/test_self_supervised.py.
"""

import functools

import jax.numpy as jnp
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

# --------------------------------------------------------------------------- #
# DINO, SwAV (jaxloss/self_supervised/clustering.py)
#
# The harness slices, stacks and masks axis 0 of the positional arrays and
# reads one array: DINO's case is a wrapper of the same name and signature
# that takes `[batch, views, K]` logits (moved to the loss's views-first
# layout) and returns the loss without the new centre (the centre is checked
# in tests/test_self_supervised_clustering.py: official code, jit, bf16,
# scan). Its teacher logits and centre are not differentiated (no gradient
# reaches them). SwAV's codes are computed from its own scores with the
# gradient stopped, which finite differences would see move: its gradients
# are checked against torch autograd of the official code (float64, 1e-10),
# and forward mode against reverse mode, in that test, so `grad_modes=()`
# here (the finite-difference property does not apply). Its scores are
# SwAV's cosines, bounded (`magnitude_args=()`): at scores of 1e15 the
# float32 log-matrix (1e16 / epsilon) ties entries that float64 tells apart
# and the codes differ (no NaN; that test checks 1e15 and 1e30).

K_PROTOTYPES = 5


@functools.wraps(jss.dino_loss)
def _dino_batch_first(student_logits, teacher_logits, center, **kwargs):
  loss, _ = jss.dino_loss(
    jnp.swapaxes(student_logits, 0, 1),
    jnp.swapaxes(teacher_logits, 0, 1),
    center,
    **kwargs,
  )
  return loss


def _dino(rng, n):
  return (
    I.logits(rng, n, 3, K_PROTOTYPES),
    I.logits(rng, n, 2, K_PROTOTYPES),
    I.logits(rng, K_PROTOTYPES, scale=0.5),
  ), dict(student_temperature=0.5, teacher_temperature=0.2)


def _dino_edges():
  """Identical (zero) logits, logits of ±1e4, one example, one teacher
  view."""
  zeros = np.zeros((4, 3, K_PROTOTYPES), I.F32)
  big = I.extreme_logits(4, 3, K_PROTOTYPES)
  centre = np.zeros(K_PROTOTYPES, I.F32)
  return [
    ((zeros, zeros[:, :2], centre), {}),
    ((big, big[:, :2], centre), {}),
    ((big, -big[:, :2], centre + 1e4), {}),
    ((big[:1], zeros[:1, :2], centre), {}),
    ((big, big[:, :1], centre), {}),
  ]


def _swav(rng, n):
  return (
    I.logits(rng, n, K_PROTOTYPES, scale=0.5),
    I.logits(rng, n, K_PROTOTYPES, scale=0.5),
  ), {}


def _swav_edges():
  """Identical scores, zeros, ±1e4 (exp(score / epsilon) overflows in the
  official exp-space Sinkhorn), one example."""
  ones = np.ones((4, K_PROTOTYPES), I.F32)
  big = I.extreme_logits(4, K_PROTOTYPES)
  return [
    ((ones, ones), {}),
    ((0 * ones, ones), {}),
    ((big, -big), {}),
    ((big[:1], ones[:1]), {}),
  ]


CASES += [
  LossCase(
    _dino_batch_first,
    _dino,
    float_args=(0,),
    batch_args=(0, 1),
    edge_inputs=_dino_edges,
  ),
  LossCase(
    jss.swav_loss,
    _swav,
    float_args=(0, 1),
    edge_inputs=_swav_edges,
    grad_modes=(),
    magnitude_args=(),
  ),
]
