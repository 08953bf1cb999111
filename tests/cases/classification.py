"""Registry entries for jaxloss.classification."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

C = 4  # classes


def _binary(rng, n):
  return (I.logits(rng, n, 3), I.binary(rng, n, 3)), {}


def _soft(rng, n):
  return (I.logits(rng, n, C), I.distributions(rng, n, C)), {}


def _integer(rng, n):
  return (I.logits(rng, n, C), I.class_labels(rng, C, n)), {}


def _extreme_binary():
  return [((I.extreme_logits(4, 3), np.tile([0.0, 1.0, 0.5], (4, 1)).astype(I.F32)), {})]


def _extreme_soft():
  return [((I.extreme_logits(4, C), np.eye(C, dtype=I.F32)), {})]


def _extreme_integer():
  return [((I.extreme_logits(4, C), np.arange(4, dtype=np.int32)), {})]


CASES = [
    LossCase(jl.sigmoid_binary_cross_entropy, _binary, float_args=(0, 1),
             edge_inputs=_extreme_binary),
    LossCase(jl.sigmoid_binary_cross_entropy,
             lambda rng, n: (_binary(rng, n)[0], {
                 "pos_weight": np.array([1.0, 2.0, 0.5], I.F32),
                 "label_smoothing": 0.1}),
             name="sigmoid_binary_cross_entropy[pos_weight,smoothing]",
             float_args=(0, 1), edge_inputs=_extreme_binary),
    LossCase(jl.binary_cross_entropy,
             lambda rng, n: ((I.probabilities(rng, n, 3), I.binary(rng, n, 3)), {}),
             float_args=(0, 1),
             edge_inputs=lambda: [((np.array([[0.0, 1.0, 0.5]] * 2, I.F32),
                                    np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]],
                                             I.F32)), {})]),
    LossCase(jl.softmax_cross_entropy, _soft, float_args=(0, 1),
             edge_inputs=_extreme_soft),
    LossCase(jl.softmax_cross_entropy,
             lambda rng, n: (_soft(rng, n)[0], {
                 "label_smoothing": 0.2,
                 "class_weights": np.array([1.0, 2.0, 0.5, 1.0], I.F32)}),
             name="softmax_cross_entropy[smoothing,class_weights]",
             float_args=(0, 1), edge_inputs=_extreme_soft),
    LossCase(jl.softmax_cross_entropy_with_integer_labels, _integer,
             edge_inputs=_extreme_integer),
    LossCase(jl.softmax_cross_entropy_with_integer_labels,
             lambda rng, n: (_integer(rng, n)[0], {
                 "label_smoothing": 0.1,
                 "class_weights": np.array([1.0, 2.0, 0.5, 1.0], I.F32)}),
             name="softmax_cross_entropy_with_integer_labels[smoothing,weights]",
             mean_of_none=False,
             edge_inputs=_extreme_integer),
]
