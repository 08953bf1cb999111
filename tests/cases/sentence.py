"""Registry entries for the sentence-embedding losses (issue 22 §4):
CoSENT, AnglE, Margin MSE and a Matryoshka-wrapped loss."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

D = 4  # embedding dimension
K = 2  # negatives per query (Margin MSE)
# The Margin MSE is the square of dot products: quartic in the inputs, it
# overflows float32 from about 1e9.5, below the huge-magnitude check's
# smallest scale (1e15), which therefore does not apply (its docstring states
# the range).
QUARTIC_RANGE = 1e9

HELPERS = {"matryoshka"}


def _embeddings(rng, *shape):
  return rng.normal(size=shape).astype(I.F32)


def _scored_pairs(rng, n):
  # Graded scores with ties: pairs of equal labels are not compared.
  labels = rng.integers(0, 3, size=n).astype(I.F32)
  return (_embeddings(rng, n, D), _embeddings(rng, n, D), labels), {}


def _pair_edges():
  labels = np.array([0.0, 1.0, 2.0, 1.0], I.F32)
  same = np.broadcast_to(np.linspace(-1.0, 1.0, D, dtype=I.F32), (4, D))
  zeros = np.zeros((4, D), I.F32)
  return [
    ((same.copy(), same.copy(), labels), {}),  # identical embeddings
    ((zeros, zeros.copy(), labels), {}),  # zero vectors
    ((same.copy(), -same, labels), {}),  # opposite
    ((same.copy(), same.copy(), np.zeros(4, I.F32)), {}),  # one label
  ]


def _margin_mse(rng, n):
  return (
    _embeddings(rng, n, D),
    _embeddings(rng, n, D),
    _embeddings(rng, n, K, D),
    _embeddings(rng, n, K),
  ), {}


def _margin_mse_edges():
  zeros = np.zeros((4, D), I.F32)
  return [
    (
      (zeros, zeros.copy(), np.zeros((4, K, D), I.F32), np.ones((4, K), I.F32)),
      {},
    ),
    (
      (
        zeros + 1,
        zeros + 1,
        np.ones((4, K, D), I.F32),
        np.zeros((4, K), I.F32),
      ),
      {},
    ),
  ]


def _labels_short(inputs):
  (a, b, labels), kwargs = inputs
  return (a, b, labels[:-1]), kwargs


CASES = [
  # A log-sum-exp over all pairs of the batch: a batch-level scalar for every
  # reduction, as uniformity_loss.
  LossCase(
    jl.cosent_loss,
    _scored_pairs,
    float_args=(0, 1),
    per_example=False,
    edge_inputs=_pair_edges,
  ),
  LossCase(
    jl.angle_loss,
    _scored_pairs,
    float_args=(0, 1),
    per_example=False,
    edge_inputs=_pair_edges,
    wrong_shape=_labels_short,
  ),
  LossCase(
    jl.margin_mse_loss,
    _margin_mse,
    # The teacher's margins are targets (not differentiated, as the
    # reference's detached labels).
    float_args=(0, 1, 2),
    edge_inputs=_margin_mse_edges,
    max_magnitude=QUARTIC_RANGE,
  ),
  # The wrapper, over Margin MSE (per example, and the cheapest of the
  # wrapped losses; tests/test_sentence.py checks MNRL and CoSENT against
  # the reference): prefixes 4 and 2 of the three embeddings; the margins
  # ([batch, K], another width) are not shrunk.
  LossCase(
    jl.matryoshka(jl.margin_mse_loss, (4, 2), weights=(1, 0.5)),
    _margin_mse,
    float_args=(0, 1, 2),
    edge_inputs=_margin_mse_edges,
    max_magnitude=QUARTIC_RANGE,
  ),
]
