"""Registry entries for jaxloss.distillation.

The teacher's logits (and top-k log-probabilities) carry no gradient
(stopped), so they are left out of ``float_args`` (finite differences would
see them). ``generalized_jsd_loss``'s ``beta`` 0 and 1 are separate programs
(trl's branches): one case runs ``beta=1`` and its edge inputs ``beta=0``.
"""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

V = 5  # vocabulary
K = 3  # the sparse teacher's top-k
REDUCTIONS = ("none", "sum", "mean", "batchmean")


def _dense(**kwargs):
  def make(rng, n):
    student = I.logits(rng, n, 2, V)
    teacher = I.logits(rng, n, 2, V, scale=3.0)
    return (student, teacher), kwargs

  return make


def _masked_teacher():
  """Teacher logits with ``-inf`` entries (a masked vocabulary)."""
  teacher = I.logits(np.random.default_rng(5), 4, V, scale=3.0)
  teacher[:, 1::2] = -np.inf
  teacher[0, :-1] = -np.inf  # one entry left: a one-hot teacher
  return teacher


def _edge_dense(**kwargs):
  def edges():
    extreme = I.extreme_logits(4, V)
    return [
      ((extreme, extreme[::-1].copy()), kwargs),
      ((extreme, extreme), kwargs),  # identical distributions
      ((extreme, _masked_teacher()), kwargs),
      ((I.logits(np.random.default_rng(6), 4, V), _masked_teacher()), kwargs),
    ]

  return edges


def _edge_jsd_branches():
  extreme = I.extreme_logits(4, V)
  masked = _masked_teacher()
  return [
    # beta = 1, the reverse KL: finite for finite teacher logits.
    ((extreme, extreme[::-1].copy()), {"beta": 1.0}),
    # beta = 0, the forward KL: finite also with -inf teacher logits.
    ((extreme, masked), {"beta": 0.0}),
    ((I.logits(np.random.default_rng(6), 4, V), masked), {"beta": 0.0}),
  ]


def _edge_skew():
  return _edge_dense(alpha=0.1)() + _edge_dense(alpha=0.1, reverse=True)()


def _top_k(rng, n):
  """Distinct top-k indices with the teacher's log-probabilities (summing to
  less than 1: the mass outside the top-k)."""
  indices = np.argsort(rng.random((n, V)), axis=1)[:, :K]
  probabilities = I.distributions(rng, n, K + 1)[:, :K]
  return indices.astype(np.int32), np.log(probabilities).astype(I.F32)


def _sparse(rng, n):
  indices, log_probs = _top_k(rng, n)
  return (I.logits(rng, n, V), indices, log_probs), {"temperature": 2.0}


def _edge_sparse():
  indices, log_probs = _top_k(np.random.default_rng(7), 4)
  partial = log_probs.copy()
  partial[:, -1] = -np.inf  # fewer than k tokens kept
  partial[0, :] = -np.inf  # none kept: 0
  padded = indices.copy()
  padded[:, -1] = padded[:, 0]  # an empty slot repeats an index
  extreme = I.extreme_logits(4, V)
  return [
    ((extreme, indices, log_probs), {}),
    ((extreme, padded, partial), {}),
    ((I.logits(np.random.default_rng(8), 4, V), padded, partial), {}),
  ]


CASES = [
  LossCase(
    jl.kd_loss,
    _dense(temperature=2.0),
    reductions=REDUCTIONS,
    edge_inputs=_edge_dense(temperature=2.0),
  ),
  LossCase(
    jl.generalized_jsd_loss,
    _dense(beta=0.5, temperature=1.5),
    reductions=REDUCTIONS,
    edge_inputs=_edge_dense(beta=0.5),
  ),
  LossCase(
    jl.generalized_jsd_loss,
    _dense(beta=1.0),
    name="generalized_jsd_loss[beta=0,1]",
    reductions=REDUCTIONS,
    edge_inputs=_edge_jsd_branches,
  ),
  LossCase(
    jl.skew_kl_loss,
    _dense(alpha=0.1),
    reductions=REDUCTIONS,
    edge_inputs=_edge_skew,
  ),
  LossCase(
    jl.total_variation_distance,
    _dense(),
    reductions=REDUCTIONS,
    edge_inputs=_edge_dense(),
  ),
  LossCase(
    jl.sparse_kd_loss,
    _sparse,
    reductions=REDUCTIONS,
    edge_inputs=_edge_sparse,
    label_arg=1,
    num_classes=V,
  ),
]
