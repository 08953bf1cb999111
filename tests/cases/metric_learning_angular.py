"""Registry entries for issue 22 §5's metric-learning losses: SphereFace,
L-Softmax, the center loss and TE2E."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

D = 4  # embedding dimension
C = 5  # classes
# Products of two input norms (L-Softmax's logits) and squared distances
# (center loss): float32 squares overflow from ~1.8e19.
QUADRATIC_RANGE = 1e15
LABELS = dict(label_arg=1, num_classes=C)

HELPERS = {"update_centers"}


def _embeddings(rng, *shape):
  return rng.normal(size=shape).astype(I.F32)


def _with_centers(rng, n, **kwargs):
  return (
    _embeddings(rng, n, D),
    I.class_labels(rng, C, n),
    _embeddings(rng, C, D),
  ), kwargs


def _center_edges(**kwargs):
  def edges():
    centers = _embeddings(np.random.default_rng(0), C, D)
    labels = np.arange(4, dtype=np.int32)
    return [
      ((centers[:4].copy(), labels, centers), kwargs),  # on its centre
      ((-centers[:4], labels, centers), kwargs),  # opposite
      ((np.zeros((4, D), I.F32), labels, centers), kwargs),
      ((centers[:4].copy(), labels, np.zeros((C, D), I.F32)), kwargs),
    ]

  return edges


def _te2e(rng, n):
  return (_embeddings(rng, n, D), _embeddings(rng, n, D), I.binary(rng, n)), {}


def _te2e_edges():
  same = np.broadcast_to(np.linspace(-1.0, 1.0, D, dtype=I.F32), (4, D))
  labels = np.array([1.0, 0.0, 1.0, 0.0], I.F32)
  zeros = np.zeros((4, D), I.F32)
  return [
    ((same.copy(), same.copy(), labels), {}),
    ((same.copy(), -same, labels), {}),
    ((zeros, zeros.copy(), labels), {}),
  ]


CASES = [
  # The class vectors are shared by the batch, not batch-shaped. margin=3:
  # odd, so ψ's sign flips are exercised; the default 4 is PML's.
  LossCase(
    jl.sphereface_loss,
    lambda rng, n: _with_centers(rng, n, margin=3),
    float_args=(0, 2),
    batch_args=(0, 1),
    edge_inputs=_center_edges(margin=3),
    **LABELS,
  ),
  LossCase(
    jl.large_margin_softmax_loss,
    _with_centers,
    float_args=(0, 2),
    batch_args=(0, 1),
    edge_inputs=_center_edges(),
    max_magnitude=QUADRATIC_RANGE,
    **LABELS,
  ),
  LossCase(
    jl.center_loss,
    _with_centers,
    float_args=(0, 2),
    batch_args=(0, 1),
    edge_inputs=_center_edges(),
    max_magnitude=QUADRATIC_RANGE,
    **LABELS,
  ),
  LossCase(
    jl.te2e_loss,
    _te2e,
    float_args=(0, 1),
    edge_inputs=_te2e_edges,
  ),
]
