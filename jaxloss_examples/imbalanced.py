"""Part 1: choosing a loss for a long-tailed classification problem.

A linear softmax classifier on a long-tailed split of the digits (class ``c``
kept at a rate falling geometrically from 1 to ``imbalance``), trained with
cross-entropy, class-balanced cross-entropy (Cui et al. 2019), focal loss,
class-balanced focal loss and PolyLoss; per-class recall and balanced
accuracy on the (balanced) test split.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
from jaxloss_examples import common


def long_tailed_digits(seed: int = 0, imbalance: float = 0.05):
  """Digits whose training split keeps class ``c`` at rate
  ``imbalance ** (c / 9)`` (the test split stays balanced)."""
  x_train, x_test, y_train, y_test = common.digits(seed)
  keep = np.random.default_rng(seed).random(len(y_train)) < (
    imbalance ** (y_train / 9.0)
  )
  return x_train[keep], y_train[keep], x_test, y_test


def losses(class_weights) -> dict:
  """The compared losses, each ``(logits, labels) -> scalar``."""
  ce = jl.softmax_cross_entropy_with_integer_labels
  return {
    "cross-entropy": lambda z, y: ce(z, y, reduction="mean"),
    "class-balanced CE (Cui et al.)": lambda z, y: ce(
      z, y, class_weights=class_weights, reduction="mean"
    ),
    "focal (gamma=2)": lambda z, y: jl.softmax_focal_loss(
      z, y, gamma=2.0, reduction="mean"
    ),
    "class-balanced focal": lambda z, y: jl.softmax_focal_loss(
      z, y, alpha=class_weights, gamma=2.0, reduction="mean"
    ),
    "PolyLoss (eps=2)": lambda z, y: jl.poly_loss_cross_entropy(
      z, jax.nn.one_hot(y, 10), epsilon=2.0, reduction="mean"
    ),
  }


def linear(params, batch):
  return batch["x"] @ params["w"] + params["b"][None, :]


def train(loss_fn, x, y, *, steps: int = 400, seed: int = 0):
  """Full-batch Adam with :func:`jaxloss.train.step`; returns the parameters."""
  objective = jl.train.objective(
    linear, {"classification": lambda z, b: loss_fn(z, b["y"])}
  )
  optimizer = optax.adam(0.05)
  step = jl.train.step(objective, optimizer)
  key = jax.random.key(seed)
  params = {
    "w": 0.01 * jax.random.normal(key, (x.shape[1], 10)),
    "b": jnp.zeros(10),
  }
  state = optimizer.init(params)
  batch = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
  for _ in range(steps):
    params, state, _ = step(params, state, batch)
  return params


def per_class_recall(params, x, y) -> np.ndarray:
  predicted = np.asarray(jnp.argmax(linear(params, {"x": x}), axis=-1))
  return np.array([np.mean(predicted[y == c] == c) for c in range(10)])


def run(out=common.OUT, *, steps: int = 400, names=None, progress=True):
  """Trains every loss (or those in ``names``); writes the table.

  Returns ``{loss name: per-class recall [10]}``.
  """
  x_train, y_train, x_test, y_test = long_tailed_digits()
  counts = np.bincount(y_train, minlength=10)
  weights = jl.class_weights_from_counts(
    counts, method="effective_number", beta=0.99
  )
  chosen = {
    k: v for k, v in losses(weights).items() if names is None or k in names
  }
  recalls = {}
  for name in common.progress(chosen, "imbalanced digits", progress):
    params = train(chosen[name], x_train, y_train, steps=steps)
    recalls[name] = per_class_recall(params, x_test, y_test)
  rows = [
    [name] + [f"{r:.2f}" for r in recall] + [f"{recall.mean():.3f}"]
    for name, recall in recalls.items()
  ]
  text = (
    f"Linear classifier, {steps} full-batch Adam steps. Training "
    f"examples per class: {counts.tolist()}; the test split is "
    "balanced (recall of each class, and their mean, the balanced "
    "accuracy).\n\n"
    + common.table(
      ["loss"] + [f"r{c}" for c in range(10)] + ["balanced acc"], rows
    )
  )
  common.report(
    out,
    "imbalanced_digits.md",
    "1. Imbalanced classification (long-tailed digits)",
    text,
  )
  return recalls
