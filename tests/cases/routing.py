"""Registry entries for jaxloss.routing (imported from the family itself).

Both losses return one scalar, an auxiliary loss over every token (no
per-token values to reduce, hence ``per_example=False`` and no reductions);
their ``where`` (padding tokens removed, all-padding groups) is tested in
tests/test_routing.py. The batch axis of the registry is the token axis of a
single group (``[tokens, E]``); vmap adds a leading axis.
"""

import numpy as np

from jaxloss import routing
from jaxloss.testing import LossCase

CASES: list[LossCase] = []

E, K = 4, 2  # experts, experts per token


def _softmax(z):
  z = np.exp(z - z.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


def _dispatch(rng, n):
  """Router probabilities ``[n, E]`` and their top-k indices ``[n, K]``."""
  probs = _softmax(rng.normal(size=(n, E))).astype(np.float32)
  top = np.argsort(-probs, axis=-1)[:, :K].astype(np.int32)
  return probs, top


def _balance(rng, n):
  probs, top = _dispatch(rng, n)
  return (probs, top), {"num_experts": E}


def _balance_edges():
  """Uniform probabilities, one-hot probabilities (zeros), every token to
  the same experts, all tokens padding, one token kept, two groups of which
  one is all padding, top-1 indices ``[tokens]``."""
  uniform = np.full((4, E), 1 / E, np.float32)
  onehot = np.eye(E, dtype=np.float32)
  same = np.tile(np.array([[0, 1]], np.int32), (4, 1))
  probs, top = _dispatch(np.random.default_rng(1), 6)
  none = np.zeros(6, bool)
  one = np.arange(6) == 2
  groups = np.stack([probs, probs[::-1]]), np.stack([top, top[::-1]])
  padded = np.stack([none, np.ones(6, bool)])
  return [
    ((uniform, same), {"num_experts": E}),
    ((onehot, np.arange(E, dtype=np.int32)[:, None]), {"num_experts": E}),
    ((probs, top), {"num_experts": E, "where": none}),
    ((probs, top), {"num_experts": E, "where": one}),
    (groups, {"num_experts": E, "where": padded}),
    ((probs, top[:, 0]), {"num_experts": E}),
  ]


def _logits(rng, n):
  return (rng.normal(size=(n, E)).astype(np.float32),), {}


def _logit_edges():
  """Zeros, large logits of both signs, -inf-free extremes, all padding,
  padding tokens holding NaN, two groups."""
  z = np.random.default_rng(2).normal(size=(6, E)).astype(np.float32)
  nan = z.copy()
  nan[1] = np.nan
  keep = np.arange(6) != 1
  return [
    ((np.zeros((4, E), np.float32),), {}),
    ((np.full((4, E), 1e4, np.float32) * [[1], [-1], [1], [-1]],), {}),
    ((z,), {"where": np.zeros(6, bool)}),
    ((nan,), {"where": keep}),
    ((np.stack([z, -z]),), {"where": np.stack([keep, ~keep])}),
  ]


def _wrong_shape_logits(inputs):
  (z,), kwargs = inputs
  return (z,), {**kwargs, "where": np.ones(len(z) - 1, bool)}


CASES += [
  LossCase(
    routing.load_balancing_loss,
    _balance,
    edge_inputs=_balance_edges,
    reductions=(),
    per_example=False,
    magnitude_args=(),  # probabilities
  ),
  LossCase(
    routing.router_z_loss,
    _logits,
    edge_inputs=_logit_edges,
    reductions=(),
    per_example=False,
    wrong_shape=_wrong_shape_logits,
    max_magnitude=1e15,  # quadratic in the logits (its docstring's range)
  ),
]
