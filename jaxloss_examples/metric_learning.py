"""Part 2: metric learning on digits.

A small Flax NNX MLP maps each 8×8 digit to an 8-dimensional embedding,
trained with supervised contrastive loss (Khosla et al. 2020), batch-hard
triplet loss (Hermans et al. 2017) or an ArcFace head (Deng et al. 2019,
:class:`jaxloss.nn.ArcFace`). The score is the leave-one-out nearest-neighbour
accuracy (cosine similarity) on the held-out test split, against the same
network untrained and against the raw 64 pixels.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxloss as jl
from jaxloss_examples import common

DIM = 8


class Embedder(nnx.Module):
  """``[batch, 64]`` pixels → ``[batch, DIM]`` embeddings."""

  def __init__(self, *, rngs: nnx.Rngs, hidden: int = 128):
    self.hidden = nnx.Linear(64, hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, DIM, rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.relu(self.hidden(x)))


class Model(nnx.Module):
  """The embedder and an ArcFace head (used by the ArcFace loss only)."""

  def __init__(self, *, seed: int = 0):
    rngs = nnx.Rngs(seed)
    self.embed = Embedder(rngs=rngs)
    self.arcface = jl.nn.ArcFace(DIM, 10, scale=16.0, margin=0.3, rngs=rngs)


def _unit(e):
  return e / jnp.linalg.norm(e, axis=-1, keepdims=True)


# name -> (apply_fn(model, batch) -> outputs, loss term(outputs, batch)).
LOSSES = {
  "supervised contrastive (t=0.1)": (
    lambda m, b: _unit(m.embed(b["x"])),
    jl.train.term(jl.supervised_contrastive_loss, "y", temperature=0.1),
  ),
  "batch-hard triplet (margin 0.5)": (
    lambda m, b: _unit(m.embed(b["x"])),
    jl.train.term(jl.batch_hard_triplet_loss, "y", margin=0.5),
  ),
  "ArcFace (s=16, m=0.3)": (
    lambda m, b: m.arcface(m.embed(b["x"]), b["y"]),
    lambda loss, b: loss,
  ),
}


def nn_accuracy(embeddings, labels) -> float:
  """Leave-one-out 1-nearest-neighbour accuracy under cosine similarity."""
  e = np.asarray(embeddings, np.float64)
  e = e / np.linalg.norm(e, axis=1, keepdims=True)
  similarity = e @ e.T
  np.fill_diagonal(similarity, -np.inf)
  return float(np.mean(labels[np.argmax(similarity, axis=1)] == labels))


def train(
  name, x, y, *, steps: int, batch_size: int, seed: int = 0, progress=True
) -> Model:
  """Adam on random mini-batches with :func:`jaxloss.train.nnx_step`."""
  apply_fn, term = LOSSES[name]
  model = Model(seed=seed)
  optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
  step = jl.train.nnx_step(jl.train.objective(apply_fn, {"metric": term}))
  rng = np.random.default_rng(seed)
  for _ in common.progress(range(steps), name, progress):
    index = rng.choice(len(y), batch_size, replace=False)
    step(model, optimizer, {"x": x[index], "y": y[index]})
  return model


def run(
  out=common.OUT, *, steps: int = 400, batch_size: int = 128, progress=True
) -> dict:
  """Trains each loss and writes the accuracy table.

  Returns ``{row name: nearest-neighbour accuracy}``, including the
  ``"untrained"`` and ``"raw pixels"`` baselines.
  """
  x_train, x_test, y_train, y_test = common.digits()
  accuracy = {
    "raw pixels (64-d, reference)": nn_accuracy(x_test, y_test),
    "untrained": nn_accuracy(Model().embed(x_test), y_test),
  }
  for name in common.progress(LOSSES, "metric learning", progress):
    model = train(
      name,
      x_train,
      y_train,
      steps=steps,
      batch_size=batch_size,
      progress=progress,
    )
    accuracy[name] = nn_accuracy(model.embed(x_test), y_test)
  text = (
    f"{DIM}-d embeddings from a 64-128-{DIM} MLP, {steps} Adam steps on "
    f"batches of {batch_size}; leave-one-out nearest-neighbour accuracy "
    f"(cosine) on the {len(y_test)} held-out digits.\n\n"
    + common.table(
      ["embedding", "NN accuracy"],
      [[k, f"{v:.3f}"] for k, v in accuracy.items()],
    )
  )
  common.report(out, "metric_learning.md", "2. Metric learning (digits)", text)
  return accuracy
