"""Registry entries for jaxloss.distributed: each sharded loss, the
one-device loss it equals on the concatenated global batch, and its inputs.

The sharded losses need several devices, so these cases are not in the
one-device registry (``CASES`` is empty): tests/distributed_checks.py runs
them on 1, 2, 3 and 8 simulated CPU devices, in a child process that
tests/test_distributed.py starts with the device count set before jax is
imported, and compares value and gradients with the one-device loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

import jaxloss
from jaxloss import distributed as jd

CASES: list = []  # the one-device registry: see SHARDED below.

DIM = 4


@dataclasses.dataclass(frozen=True)
class ShardedCase:
  """A sharded loss, the one-device loss it must equal, and its inputs.

  Attributes:
    fn: the sharded loss (``jaxloss.distributed.<name>``).
    reference: the one-device loss it equals on the concatenated batch.
    make_inputs: ``(rng, batch) -> (args, kwargs)``, the global float64
      inputs (the checker casts floating arrays to the dtype it tests). An
      array of rank >= 1 (embeddings, labels, ``where``, ``weights``) is
      split over the devices along axis 0; a rank-0 floating keyword array
      is a learned hyper-parameter, replicated and differentiated; ``None``
      stays ``None``.
    name: the check's label (defaults to ``fn.__name__``).
    float_args: indices of the positional arrays that are differentiated.
    options: static keyword options, the same for both losses.
  """

  fn: Callable[..., Any]
  reference: Callable[..., Any]
  make_inputs: Callable[[np.random.Generator, int], tuple[tuple, dict]]
  name: str | None = None
  float_args: tuple[int, ...] = (0, 1)
  options: dict = dataclasses.field(default_factory=dict)

  @property
  def id(self) -> str:
    return self.name or self.fn.__name__


def _normal(rng, *shape):
  return rng.normal(size=shape)


def _mask(rng, *shape):
  return rng.random(shape) > 0.2


def _weights(rng, n):
  return rng.uniform(0.5, 2.0, n)


def _scalar(value):
  return np.float64(value)


SHARDED = [
  ShardedCase(
    jd.clip_loss,
    jaxloss.clip_loss,
    lambda r, n: (
      (_normal(r, n, DIM), _normal(r, n, DIM)),
      dict(temperature=_scalar(0.2), where=_mask(r, n), weights=_weights(r, n)),
    ),
  ),
  ShardedCase(
    jd.siglip_loss,
    jaxloss.siglip_loss,
    lambda r, n: (
      (_normal(r, n, DIM), _normal(r, n, DIM)),
      dict(
        logit_scale=_scalar(5.0), logit_bias=_scalar(-2.0), where=_mask(r, n)
      ),
    ),
  ),
  ShardedCase(
    jd.infonce_loss,
    jaxloss.infonce_loss,
    lambda r, n: (
      (_normal(r, n, DIM), _normal(r, n, DIM), _normal(r, n, DIM)),
      dict(temperature=_scalar(0.3), where=_mask(r, n)),
    ),
    name="infonce_loss[shared negatives]",
    float_args=(0, 1, 2),
  ),
  ShardedCase(
    jd.infonce_loss,
    jaxloss.infonce_loss,
    lambda r, n: (
      (_normal(r, n, DIM), _normal(r, n, DIM), _normal(r, n, 2, DIM)),
      dict(temperature=_scalar(2.0), weights=_weights(r, n)),
    ),
    name="infonce_loss[per-anchor negatives, dot]",
    float_args=(0, 1, 2),
    options=dict(similarity="dot"),
  ),
  ShardedCase(
    jd.supervised_contrastive_loss,
    jaxloss.supervised_contrastive_loss,
    lambda r, n: (
      (_normal(r, n, DIM) / 2, r.integers(0, 5, n)),
      dict(temperature=_scalar(0.5), where=_mask(r, n)),
    ),
    float_args=(0,),
    options=dict(base_temperature=0.1),
  ),
  ShardedCase(
    jd.supervised_contrastive_loss,
    jaxloss.supervised_contrastive_loss,
    lambda r, n: (
      (_normal(r, n, 2, DIM) / 2, None),
      dict(temperature=_scalar(0.5), where=_mask(r, n, 1)),
    ),
    name="supervised_contrastive_loss[2 views, no labels]",
    float_args=(0,),
  ),
  ShardedCase(
    jd.multiple_negatives_ranking_loss,
    jaxloss.multiple_negatives_ranking_loss,
    lambda r, n: (
      (_normal(r, n, DIM), _normal(r, n, DIM), _normal(r, n, DIM)),
      dict(scale=_scalar(4.0), where=_mask(r, n)),
    ),
    name="multiple_negatives_ranking_loss[negatives, symmetric]",
    float_args=(0, 1, 2),
    options=dict(symmetric=True),
  ),
  ShardedCase(
    jd.multiple_negatives_ranking_loss,
    jaxloss.multiple_negatives_ranking_loss,
    lambda r, n: (
      (_normal(r, n, DIM), _normal(r, n, DIM)),
      dict(scale=_scalar(0.5), weights=_weights(r, n)),
    ),
    name="multiple_negatives_ranking_loss[dot]",
    options=dict(similarity="dot"),
  ),
]

# Issue 22 (S1): NT-Xent over the global batch (labels shared across devices:
# positives and negatives on other devices).
SHARDED += [
  ShardedCase(
    jd.ntxent,
    jaxloss.ntxent,
    lambda r, n: (
      (_normal(r, n, DIM), r.integers(0, 4, n)),
      dict(temperature=_scalar(0.5), where=_mask(r, n), weights=_weights(r, n)),
    ),
    float_args=(0,),
  ),
]
