"""Sentence-embedding losses against sentence-transformers 6.3, called.

Each reference is the installed loss's ``compute_loss_from_embeddings`` (or,
for ``MatryoshkaLoss``, which has none, its ``forward`` through a stand-in
model that returns the given embeddings), on torch float64 tensors; the
gradients come from torch autograd. Tolerance: 1e-10 relative in float64.
"""

import functools

import jax
import numpy as np
import pytest
import torch
from sentence_transformers.sentence_transformer import losses as st_losses
from sentence_transformers.util import pairwise_cos_sim, pairwise_dot_score

import jaxloss as jl
from jaxloss.testing import assert_close

TOL = dict(rtol=1e-10, atol=1e-12)


class StandIn(torch.nn.Module):
  """The least a sentence-transformers loss needs of its model: a forward
  that returns the features' ``embedding`` as the sentence embedding."""

  def __init__(self, dim):
    super().__init__()
    self.dim = dim

  def forward(self, features):
    return {"sentence_embedding": features["embedding"]}

  def get_embedding_dimension(self):
    return self.dim

  def _get_untruncated_embedding_dimension(self):
    return self.dim


def _torch(*arrays):
  return [
    torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in arrays
  ]


def _reference(loss_fn, arrays, labels):
  """``loss_fn(tensors, labels)`` and its gradients in every array."""
  tensors = _torch(*arrays)
  value = loss_fn(tensors, labels)
  value.backward()
  return value.item(), [t.grad.numpy() for t in tensors]


def _ours(loss_fn, arrays, *rest, **kwargs):
  """Value and gradients in the leading ``arrays``, in float64."""
  n = len(arrays)

  def f(*xs):
    return loss_fn(*xs, *rest, **kwargs)

  with jax.enable_x64(True):
    value, grads = jax.value_and_grad(f, argnums=tuple(range(n)))(*arrays)
    return float(value), [np.asarray(g) for g in grads]


def _check(ours, reference, what):
  assert_close(ours[0], reference[0], **TOL, what=f"{what}: value")
  for i, (g, r) in enumerate(zip(ours[1], reference[1])):
    assert_close(g, r, **TOL, what=f"{what}: gradient {i}")


def _pairs(seed, batch, dim, levels):
  rng = np.random.default_rng(seed)
  a, b = rng.normal(size=(2, batch, dim))
  labels = rng.integers(0, levels, size=batch).astype(np.float64)  # ties
  return a, b, labels


def test_cosent_and_angle_equal_sentence_transformers():
  model = StandIn(6)
  settings = [
    ("cosent cosine", st_losses.CoSENTLoss(model), jl.cosent_loss, {}),
    (
      "cosent dot",
      st_losses.CoSENTLoss(model, scale=1.5, similarity_fct=pairwise_dot_score),
      jl.cosent_loss,
      dict(scale=1.5, similarity="dot"),
    ),
    (
      "cosent scale 7",
      st_losses.CoSENTLoss(model, scale=7.0, similarity_fct=pairwise_cos_sim),
      jl.cosent_loss,
      dict(scale=7.0),
    ),
    ("angle", st_losses.AnglELoss(model), jl.angle_loss, {}),
    (
      "angle scale 3",
      st_losses.AnglELoss(model, scale=3.0),
      jl.angle_loss,
      dict(scale=3.0),
    ),
  ]
  for seed, (name, reference, fn, kwargs) in enumerate(settings):
    for dim in (6, 5):  # AnglE pads an odd dimension
      a, b, labels = _pairs(seed, 7, dim, levels=4)
      expected = _reference(
        reference.compute_loss_from_embeddings, [a, b], torch.tensor(labels)
      )
      _check(_ours(fn, [a, b], labels, **kwargs), expected, f"{name} D={dim}")
      # `where` equals slicing the batch out.
      keep = np.array([True, False, True, True, False, True, True])
      sliced = _reference(
        reference.compute_loss_from_embeddings,
        [a[keep], b[keep]],
        torch.tensor(labels[keep]),
      )
      value, grads = _ours(fn, [a, b], labels, where=keep, **kwargs)
      _check((value, [g[keep] for g in grads]), sliced, f"{name} D={dim} where")
      assert all(np.all(g[~keep] == 0) for g in grads)
  # Boolean labels, and a batch with one label: no pair, the value 0.
  a, b, labels = _pairs(9, 5, 4, levels=2)
  for fn, reference in [
    (jl.cosent_loss, st_losses.CoSENTLoss(model)),
    (jl.angle_loss, st_losses.AnglELoss(model)),
  ]:
    bools = labels.astype(bool)
    expected = _reference(
      reference.compute_loss_from_embeddings, [a, b], torch.tensor(bools)
    )
    _check(_ours(fn, [a, b], bools), expected, f"{fn.__name__} bool")
    value, _ = _ours(fn, [a, b], np.zeros(5))
    assert value == 0.0


def test_angle_loss_equals_the_complex_division_form():
  # The authors' form as sentence-transformers' AnglELoss note and
  # pairwise_angle_sim describe it (SeanLee97/AnglE, angle_emb/loss.py,
  # commit 5155458: not fetched here): z = re + i·im from the two halves,
  # r = (z_a / z_b)·(|z_b| / |z_a|), score |Σ Re r + Im r| · scale, then
  # log(1 + Σ_{y_i < y_j} exp(s_i − s_j)). Written out in NumPy.
  a, b, labels = _pairs(3, 6, 8, levels=3)
  scale = 20.0
  re_a, im_a = a[:, :4], a[:, 4:]
  re_b, im_b = b[:, :4], b[:, 4:]
  z = np.sum(re_b**2 + im_b**2, axis=1, keepdims=True)
  re = (re_a * re_b + im_a * im_b) / z
  im = (im_a * re_b - re_a * im_b) / z
  dz = np.sqrt(np.sum(re_a**2 + im_a**2, axis=1, keepdims=True))
  dw = np.sqrt(z)
  scores = np.abs(np.sum(re / (dz / dw) + im / (dz / dw), axis=1)) * scale
  lower = labels[:, None] < labels[None, :]
  terms = (scores[:, None] - scores[None, :])[lower]
  expected = np.log1p(np.sum(np.exp(terms)))
  with jax.enable_x64(True):
    assert_close(jl.angle_loss(a, b, labels, scale=scale), expected, **TOL)


def test_margin_mse_equals_sentence_transformers():
  model = StandIn(5)
  rng = np.random.default_rng(4)
  q, p = rng.normal(size=(2, 6, 5))
  for similarity, fct in [
    ("dot", pairwise_dot_score),
    ("cosine", pairwise_cos_sim),
  ]:
    reference = st_losses.MarginMSELoss(model, similarity_fct=fct)
    for k in (1, 3):
      negatives = rng.normal(size=(k, 6, 5))
      teacher = rng.normal(size=(6, 1 + k))  # positive score first
      margins = teacher[:, :1] - teacher[:, 1:]
      expected = _reference(
        reference.compute_loss_from_embeddings,
        [q, p, *negatives],
        torch.tensor(teacher),
      )
      # jaxloss: one [batch, dim] negative, or [batch, k, dim].
      n = negatives[0] if k == 1 else np.moveaxis(negatives, 0, 1)
      m = margins[:, 0] if k == 1 else margins
      value, grads = _ours(
        jl.margin_mse_loss,
        [q, p, n],
        m,
        similarity=similarity,
        reduction="mean",
      )
      if k > 1:
        grads[2] = np.moveaxis(grads[2], 1, 0)
      grads = grads[:2] + (list(grads[2]) if k > 1 else [grads[2]])
      _check((value, grads), expected, f"margin_mse {similarity} k={k}")


def _matryoshka_reference(loss, arrays, labels, dims, weights):
  model = loss.model
  wrapped = st_losses.MatryoshkaLoss(model, loss, dims, weights)
  tensors = _torch(*arrays)
  value = wrapped([{"embedding": t} for t in tensors], labels)
  value.backward()
  return value.item(), [t.grad.numpy() for t in tensors]


def test_matryoshka_equals_sentence_transformers():
  dim = 8
  model = StandIn(dim)
  dims, weights = [8, 4, 2], [1.0, 0.5, 0.25]
  rng = np.random.default_rng(5)
  a, p, n = rng.normal(size=(3, 6, dim))
  labels = rng.integers(0, 3, size=6).astype(np.float64)
  mnrl = jl.matryoshka(
    jl.multiple_negatives_ranking_loss, dims, weights=weights
  )
  cosent = jl.matryoshka(jl.cosent_loss, [2, 8, 4], weights=[0.25, 1.0, 0.5])
  margin_mse = jl.matryoshka(jl.margin_mse_loss, dims, weights=weights)
  teacher = rng.normal(size=(6, 2))
  settings = [
    (
      "MNRL",
      st_losses.MultipleNegativesRankingLoss(model),
      functools.partial(mnrl, reduction="mean"),
      [a, p, n],
      (),
      None,
    ),
    ("CoSENT", st_losses.CoSENTLoss(model), cosent, [a, p], (labels,), labels),
    (
      "MarginMSE",
      st_losses.MarginMSELoss(model),
      functools.partial(margin_mse, reduction="mean"),
      [a, p, n],
      (teacher[:, 0] - teacher[:, 1],),
      teacher,
    ),
  ]
  for name, reference, ours, arrays, rest, st_labels in settings:
    expected = _matryoshka_reference(
      reference,
      arrays,
      None if st_labels is None else torch.tensor(st_labels),
      dims,
      weights,
    )
    _check(_ours(ours, arrays, *rest), expected, f"matryoshka {name}")


def test_matryoshka_shrinks_only_the_embeddings_and_checks_dims():
  rng = np.random.default_rng(6)
  a, b = rng.normal(size=(2, 4, 6)).astype(np.float32)
  labels = np.arange(4, dtype=np.float32)
  # Weighted sum of the loss on normalised prefixes, any reduction.
  loss = jl.matryoshka(jl.cosent_loss, (3, 6), weights=(2.0, 1.0))

  def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)

  expected = 2.0 * jl.cosent_loss(unit(a[:, :3]), unit(b[:, :3]), labels)
  expected += jl.cosent_loss(unit(a), unit(b), labels)
  assert_close(loss(a, b, labels), expected, rtol=1e-6)
  assert_close(jax.jit(loss)(a, b, labels), expected, rtol=1e-6)
  # Explicit argnums: only argument 0 is shrunk.
  per_example = jl.matryoshka(jl.squared_error, (2,), argnums=0)
  x = np.array([[3.0, 4.0, 12.0]], np.float32)
  assert_close(
    per_example(x, np.zeros((1, 2), np.float32)), [[0.36, 0.64]], rtol=1e-6
  )
  with pytest.raises(ValueError, match=r"matryoshka\(cosent_loss\).*exceeds"):
    jl.matryoshka(jl.cosent_loss, (7,))(a, b, labels)
  with pytest.raises(ValueError, match="matryoshka.*reduction"):
    loss(a, b, labels, reduction="average")
  with pytest.raises(ValueError, match="positive ints"):
    jl.matryoshka(jl.cosent_loss, (0, 4))
  with pytest.raises(ValueError, match="one entry per dim"):
    jl.matryoshka(jl.cosent_loss, (2, 4), weights=(1.0,))


def test_cosent_rejects_mismatched_inputs():
  a = np.zeros((3, 4), np.float32)
  with pytest.raises(ValueError, match="cosent_loss.*labels"):
    jl.cosent_loss(a, a, np.zeros(2, np.float32))
  with pytest.raises(ValueError, match="cosent_loss.*same shape"):
    jl.cosent_loss(a, a[:, :2], np.zeros(3, np.float32))
  with pytest.raises(ValueError, match="cosent_loss: unknown similarity"):
    jl.cosent_loss(a, a, np.zeros(3, np.float32), similarity="l2")
  with pytest.raises(ValueError, match="margin_mse_loss.*margins"):
    jl.margin_mse_loss(a, a, a, np.zeros((3, 2), np.float32))
