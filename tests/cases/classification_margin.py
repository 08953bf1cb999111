"""Registry entries for the margin, perceptron and sparsemax losses
(jaxloss/classification/margin.py and fenchel_young.py)."""

import numpy as np
from jax.scipy.special import logsumexp

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

C = 4  # classes

HELPERS = {"make_fenchel_young_loss"}


def signs(rng, *shape):
  return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(I.F32)


def _signed(rng, n):
  return (I.logits(rng, n, 3), signs(rng, n, 3)), {}


def _binary(rng, n):
  return (I.logits(rng, n, 3), I.binary(rng, n, 3)), {}


def _integer(rng, n, **kwargs):
  return (I.logits(rng, n, C), I.class_labels(rng, C, n)), kwargs


def _extreme_signed():
  targets = np.tile([1.0, -1.0, 1.0], (4, 1)).astype(I.F32)
  return [
    ((I.extreme_logits(4, 3), targets), {}),
    ((I.extreme_logits(4, 3), -targets), {}),
  ]


def _extreme_binary():
  labels = np.tile([0.0, 1.0, 1.0], (4, 1)).astype(I.F32)
  return [
    ((I.extreme_logits(4, 3), labels), {}),
    ((I.extreme_logits(4, 3), 1 - labels), {}),
  ]


def _extreme_integer():
  tied = np.zeros((4, C), I.F32)  # all scores equal
  return [
    ((I.extreme_logits(4, C), np.arange(4, dtype=np.int32)), {}),
    ((-I.extreme_logits(4, C), np.arange(4, dtype=np.int32)), {}),
    ((tied, np.arange(4, dtype=np.int32)), {}),
  ]


def _extreme_multilabel():
  labels = np.tile([0.0, 1.0, 0.5, 1.0], (4, 1)).astype(I.F32)
  return [
    ((I.extreme_logits(4, C), labels), {}),
    ((-I.extreme_logits(4, C), labels), {}),
  ]


def _torch_multilabel(rng, n):
  """torch's MultiLabelMarginLoss targets: a random list of k distinct
  classes ended by -1 (none when k = C), then leftovers that are ignored."""
  permutations = np.argsort(rng.random((n, C)), axis=-1).astype(np.int32)
  k = rng.integers(0, C + 1, size=(n, 1))
  labels = np.where(np.arange(C) == k, -1, permutations).astype(np.int32)
  return (I.logits(rng, n, C), labels), {}


def _extreme_multilabel_mask():
  mask = np.tile([False, True, True, False], (4, 1))
  return [
    ((I.extreme_logits(4, C), mask), {}),
    ((-I.extreme_logits(4, C), mask), {}),
  ]


def _extreme_fenchel_young():
  return [((I.extreme_logits(4, C), np.eye(C, dtype=I.F32)), {})]


_CLASS_WEIGHTS = np.array([1.0, 2.0, 0.5, 1.5], I.F32)

# Integer class labels in [0, C) in argument 1 (the out-of-range label check).
LABELS = {"label_arg": 1, "num_classes": C}

CASES = [
  LossCase(jl.hinge_loss, _signed, edge_inputs=_extreme_signed),
  LossCase(jl.squared_hinge_loss, _signed, edge_inputs=_extreme_signed),
  LossCase(jl.perceptron_loss, _signed, edge_inputs=_extreme_signed),
  LossCase(jl.soft_margin_loss, _signed, edge_inputs=_extreme_signed),
  LossCase(jl.sparsemax_loss, _binary, edge_inputs=_extreme_binary),
  LossCase(
    jl.multiclass_hinge_loss,
    _integer,
    edge_inputs=_extreme_integer,
    **LABELS,
  ),
  LossCase(
    jl.multiclass_perceptron_loss,
    _integer,
    edge_inputs=_extreme_integer,
    **LABELS,
  ),
  LossCase(
    jl.multiclass_sparsemax_loss,
    _integer,
    edge_inputs=_extreme_integer,
    **LABELS,
  ),
  LossCase(
    jl.make_fenchel_young_loss(logsumexp),
    lambda rng, n: ((I.logits(rng, n, C), I.distributions(rng, n, C)), {}),
    name="make_fenchel_young_loss[logsumexp]",
    float_args=(0, 1),
    magnitude_args=(0,),  # targets are distributions
    edge_inputs=_extreme_fenchel_young,
  ),
  LossCase(
    jl.multi_margin_loss,
    _integer,
    name="multi_margin_loss[p=1]",
    edge_inputs=_extreme_integer,
    **LABELS,
  ),
  # torch multiplies each example's value by w_y, and its "mean" divides by
  # the batch size: "mean" is still the mean of the "none" values.
  LossCase(
    jl.multi_margin_loss,
    lambda rng, n: _integer(
      rng, n, p=2, margin=0.5, class_weights=_CLASS_WEIGHTS
    ),
    name="multi_margin_loss[p=2,margin,class_weights]",
    edge_inputs=_extreme_integer,
    **LABELS,
  ),
  # torch's target format ends each list at -1: the one documented exception
  # to the label rule, so no label_arg (labels >= C are tested in
  # tests/test_classification_margin.py).
  LossCase(
    jl.multilabel_margin_loss,
    _torch_multilabel,
    edge_inputs=_extreme_multilabel_mask,
  ),
  LossCase(
    jl.multilabel_soft_margin_loss,
    lambda rng, n: ((I.logits(rng, n, C), I.binary(rng, n, C)), {}),
    float_args=(0, 1),
    magnitude_args=(0,),  # labels lie in [0, 1]
    edge_inputs=_extreme_multilabel,
  ),
  LossCase(
    jl.multilabel_soft_margin_loss,
    lambda rng, n: (
      (I.logits(rng, n, C), I.probabilities(rng, n, C)),
      {"class_weights": _CLASS_WEIGHTS},
    ),
    name="multilabel_soft_margin_loss[class_weights]",
    float_args=(0, 1),
    magnitude_args=(0,),
    edge_inputs=_extreme_multilabel,
  ),
]
