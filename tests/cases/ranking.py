"""Registry entries for jaxloss.ranking."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

L = 5  # list size
D = 4  # embedding dimension


def _lists(rng, n):
  """Scores and graded labels in {0, 1, 2, 3} (ties within lists included)."""
  return (
    I.logits(rng, n, L),
    rng.integers(0, 4, size=(n, L)).astype(I.F32),
  ), {}


def _list_edges():
  """Extreme scores; all labels equal (no pair); ties; an all-masked batch."""
  extreme = I.extreme_logits(4, L)
  graded = np.tile(np.arange(L, dtype=I.F32), (4, 1))
  return [
    ((extreme, graded), {}),
    ((extreme, np.ones((4, L), I.F32)), {}),
    ((np.zeros((4, L), I.F32), np.zeros((4, L), I.F32)), {}),
    ((extreme, graded), {"where": np.zeros((4, L), bool)}),
  ]


def _margin_inputs(rng, n):
  targets = np.where(rng.random((n, 3)) < 0.5, -1.0, 1.0).astype(I.F32)
  return (I.logits(rng, n, 3), I.logits(rng, n, 3), targets), {}


def _margin_edges():
  x = I.extreme_logits(4, 3)
  return [
    ((x, -x, np.ones((4, 3), I.F32)), {}),
    ((x, x, -np.ones((4, 3), I.F32)), {}),
  ]


def _retrieval(negatives=None, **kwargs):
  """Anchors and positives ``[n, D]``, optional negatives of ``negatives``
  shape after the batch axis."""

  def make(rng, n):
    args = (I.logits(rng, n, D, scale=1.0), I.logits(rng, n, D, scale=1.0))
    if negatives is not None:
      args += (I.logits(rng, n, *negatives, scale=1.0),)
    return args, kwargs

  return make


def _retrieval_edges(negatives=None, **kwargs):
  """Identical embeddings, zero vectors, and large embeddings."""

  def edges():
    n = 4
    out = []
    same = np.ones((n, D), I.F32)
    zero = np.zeros((n, D), I.F32)
    mixed = np.concatenate([zero[:2], same[2:]])
    large = I.extreme_logits(n, D)
    for anchors, positives in (
      (same, same),
      (zero, zero),
      (mixed, same),
      (large, large),
    ):
      args = (anchors, positives)
      if negatives is not None:
        k = int(np.prod(negatives)) // D
        args += (np.repeat(anchors[:, None], k, 1).reshape((n,) + negatives),)
      out.append((args, kwargs))
    return out

  return edges


def _pairwise_case(fn):
  # "mean" divides by the number of valid pairs (label_i > label_j), not by
  # the size of the pair matrix: the loss counts its own pairs.
  return LossCase(fn, _lists, edge_inputs=_list_edges, mean_of_none=False)


def _retrieval_case(suffix, negatives=None, float_args=(0, 1), **kwargs):
  # Dot-product logits are quadratic in the inputs: the documented range.
  dot = kwargs.get("similarity") == "dot"
  return LossCase(
    jl.multiple_negatives_ranking_loss,
    _retrieval(negatives, **kwargs),
    name=f"multiple_negatives_ranking_loss[{suffix}]",
    float_args=float_args,
    edge_inputs=_retrieval_edges(negatives, **kwargs),
    max_magnitude=1e15 if dot else None,
  )


CASES = [
  LossCase(
    jl.margin_ranking_loss,
    _margin_inputs,
    float_args=(0, 1),
    edge_inputs=_margin_edges,
  ),
  _pairwise_case(jl.pairwise_hinge_loss),
  _pairwise_case(jl.pairwise_logistic_loss),
  _pairwise_case(jl.pairwise_soft_zero_one_loss),
  LossCase(
    jl.ranking_softmax_loss, _lists, float_args=(0, 1), edge_inputs=_list_edges
  ),
  LossCase(jl.listmle_loss, _lists, edge_inputs=_list_edges),
  _retrieval_case("cosine"),
  _retrieval_case("cosine,k_negatives", (2, D), float_args=(0, 1, 2)),
  _retrieval_case("dot", similarity="dot", scale=1.0),
  _retrieval_case(
    "symmetric,negatives", (D,), float_args=(0, 1, 2), symmetric=True
  ),
]
