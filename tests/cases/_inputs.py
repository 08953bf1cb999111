"""Input factories shared by the registry modules."""

import numpy as np

F32 = np.float32


def logits(rng, *shape, scale=2.0):
  return (scale * rng.normal(size=shape)).astype(F32)


def probabilities(rng, *shape):
  return rng.uniform(0.02, 0.98, size=shape).astype(F32)


def distributions(rng, *shape):
  p = rng.uniform(0.05, 1.0, size=shape)
  return (p / p.sum(-1, keepdims=True)).astype(F32)


def class_labels(rng, num_classes, *shape):
  return rng.integers(0, num_classes, size=shape).astype(np.int32)


def binary(rng, *shape):
  return (rng.random(shape) < 0.5).astype(F32)


def extreme_logits(*shape):
  """Logits of +1e4 and -1e4, alternating."""
  x = np.full(shape, 1e4, F32)
  x.reshape(-1)[::2] = -1e4
  return x
