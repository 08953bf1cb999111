"""Registry entries for jaxloss.semi_supervised.

``fixmatch_loss`` and ``mixmatch_loss`` return optax's one scalar (no
per-example values to mask, weight or reduce), hence ``per_example=False``
and no reductions; their masks are tested in tests/test_semi_supervised.py.
Arguments that only build targets (weak logits, teacher logits, MixMatch
targets) carry no gradient, so they are left out of ``float_args`` (finite
differences would see them).
"""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

C = 4  # classes
REDUCTIONS = ("none", "sum", "mean", "batchmean")
HELPERS = {"sharpen", "guess_labels", "training_signal_annealing_mask"}


def _fixmatch(soft=False, **kwargs):
  def make(rng, n):
    labels = I.distributions(rng, n, C) if soft else I.class_labels(rng, C, n)
    weak = I.logits(rng, 2 * n, C, scale=3.0)
    strong = I.logits(rng, 2 * n, C)
    return (I.logits(rng, n, C), labels, weak, strong), kwargs

  return make


def _mixmatch(soft=False):
  def make(rng, n):
    labels = I.distributions(rng, n, C) if soft else I.class_labels(rng, C, n)
    targets = I.distributions(rng, 2 * n, C)
    return (I.logits(rng, n, C), labels, I.logits(rng, 2 * n, C), targets), {}

  return make


def _pair(rng, n):
  return (I.logits(rng, n, C, scale=3.0), I.logits(rng, n, C)), {}


def _single(rng, n):
  return (I.logits(rng, n, C, scale=3.0),), {}


def _extreme():
  return I.extreme_logits(4, C)


def _unconfident():
  return np.zeros((4, C), I.F32)  # max probability 1/C: below any threshold


def _labels(soft):
  """One-hot soft labels (exact zeros) or the integer labels 0..3."""
  return np.eye(C, dtype=I.F32) if soft else np.arange(4, dtype=np.int32)


def _edge_fixmatch(soft=False):
  def edges():
    extreme, flat, labels = _extreme(), _unconfident(), _labels(soft)
    return [
      ((extreme, labels, extreme, extreme), {}),
      ((extreme, labels, flat, extreme), {}),  # nothing above the threshold
      ((flat, labels, extreme, -extreme), {}),
      ((extreme, labels, extreme, -extreme), {"confidence_threshold": 0.0}),
      ((extreme, labels, extreme, flat), {"confidence_threshold": 1.0}),
    ]

  return edges


def _edge_mixmatch(soft=False):
  def edges():
    extreme, flat, labels = _extreme(), _unconfident(), _labels(soft)
    one_hot = np.eye(C, dtype=I.F32)
    return [
      ((extreme, labels, extreme, one_hot), {}),
      ((extreme, labels, -extreme, one_hot), {}),
      ((flat, labels, flat, np.full((4, C), 1 / C, I.F32)), {}),
    ]

  return edges


def _edge_pair():
  extreme, flat = _extreme(), _unconfident()
  return [
    ((extreme, extreme), {}),
    ((extreme, -extreme), {}),
    ((flat, extreme), {}),
    ((extreme, flat), {}),
  ]


def _edge_single():
  return [((_extreme(),), {}), ((_unconfident(),), {})]


CASES = [
  LossCase(
    jl.fixmatch_loss,
    _fixmatch(),
    float_args=(0, 2, 3),
    per_example=False,
    reductions=(),
    edge_inputs=_edge_fixmatch(),
  ),
  LossCase(
    jl.fixmatch_loss,
    _fixmatch(soft=True, confidence_threshold=0.5, lambda_u=2.0),
    name="fixmatch_loss[soft,threshold=0.5]",
    float_args=(0, 1, 2, 3),
    magnitude_args=(0, 2, 3),  # the soft labels are distributions
    per_example=False,
    reductions=(),
    edge_inputs=_edge_fixmatch(soft=True),
  ),
  LossCase(
    jl.mixmatch_loss,
    _mixmatch(),
    float_args=(0, 2),
    per_example=False,
    reductions=(),
    edge_inputs=_edge_mixmatch(),
  ),
  LossCase(
    jl.mixmatch_loss,
    _mixmatch(soft=True),
    name="mixmatch_loss[soft]",
    float_args=(0, 1, 2),
    magnitude_args=(0, 2),  # the soft labels are distributions
    per_example=False,
    reductions=(),
    edge_inputs=_edge_mixmatch(soft=True),
  ),
  LossCase(
    jl.uda_consistency_loss,
    _pair,
    float_args=(1,),
    reductions=REDUCTIONS,
    edge_inputs=_edge_pair,
  ),
  LossCase(
    jl.uda_consistency_loss,
    lambda rng, n: (
      _pair(rng, n)[0],
      {"temperature": 1.0, "confidence_threshold": 0.0},
    ),
    name="uda_consistency_loss[plain]",
    float_args=(1,),
    reductions=REDUCTIONS,
    edge_inputs=_edge_pair,
  ),
  LossCase(
    jl.mean_teacher_consistency_loss,
    _pair,
    float_args=(0,),
    reductions=REDUCTIONS,
    edge_inputs=_edge_pair,
  ),
  LossCase(
    jl.mean_teacher_consistency_loss,
    lambda rng, n: (_pair(rng, n)[0], {"loss_type": "kl"}),
    name="mean_teacher_consistency_loss[kl]",
    float_args=(0,),
    reductions=REDUCTIONS,
    edge_inputs=_edge_pair,
  ),
  LossCase(
    jl.pseudo_label_loss,
    lambda rng, n: (_single(rng, n)[0], {"confidence_threshold": 0.6}),
    reductions=REDUCTIONS,
    edge_inputs=_edge_single,
  ),
  LossCase(
    jl.pseudo_label_loss,
    lambda rng, n: (_single(rng, n)[0], {"confidence_threshold": 0.0}),
    name="pseudo_label_loss[lee2013]",
    reductions=REDUCTIONS,
    edge_inputs=_edge_single,
  ),
  LossCase(
    jl.entropy_minimization_loss,
    _single,
    reductions=REDUCTIONS,
    edge_inputs=_edge_single,
  ),
]
