"""Registry entries for jaxloss.contrastive (imported from the module itself,
so that the registry works before the family is re-exported by jaxloss)."""

import numpy as np

from jaxloss import contrastive as jc
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

D = 5  # embedding dim
CHUNK = 4  # does not divide the harness's batch of 6: the last chunk is padded.
# Dot-product logits (no normalisation) are quadratic in the inputs: the
# documented input range (float32 products overflow from ~1.8e19).
QUADRATIC_RANGE = 1e15


def _embeddings(rng, *shape):
  return I.logits(rng, *shape, D, scale=0.5)


def _pairs(rng, n):
  return (_embeddings(rng, n), _embeddings(rng, n)), {}


def _paired_labels(rng, n):
  """Each label at least twice (when n > 1), so every anchor has a positive."""
  return rng.permutation(np.arange(n) // 2).astype(np.int32)


def _pair_edges():
  """Identical embeddings, zero vectors, large values, a batch of one (all but
  the last of one shape, so that they share compiled programs)."""
  same = np.ones((4, D), I.F32)
  zeros = np.zeros((4, D), I.F32)
  mixed = np.concatenate([zeros[:2], same[:2]])
  large = np.full((4, D), 1e3, I.F32) * np.array([[1], [-1], [1], [-1]], I.F32)
  one = np.arange(D, dtype=I.F32)[None]
  return [
    ((same, same), {}),
    ((zeros, zeros), {}),
    ((mixed, same), {}),
    ((large, -large), {}),
    ((one, one), {}),
  ]


def _with_negatives(shared):
  def make(rng, n):
    (a, p), _ = _pairs(rng, n)
    negatives = _embeddings(rng, 3) if shared else _embeddings(rng, n, 3)
    return (a, p, negatives), {}

  return make


def _negative_edges(shared):
  def edges():
    out = []
    for k, ((a, p), kw) in enumerate(_pair_edges()):
      shape = (2, D) if shared else (a.shape[0], 2, D)
      out.append(((a, p, np.full(shape, k % 2, I.F32)), kw))  # zeros, ones
    return out

  return edges


def _grouped(rng, n):
  return (_embeddings(rng, n), _paired_labels(rng, n)), {}


def _multiview(rng, n):
  return (_embeddings(rng, n, 2), I.class_labels(rng, 3, n)), {}


def _grouped_edges():
  """Identical embeddings, zero vectors, a batch of one, all labels equal,
  singleton labels (no positives), large values."""
  same = np.ones((4, D), I.F32)
  large = np.full((4, D), 30.0, I.F32) * np.array([[1], [-1], [1], [-1]], I.F32)
  equal = np.zeros(4, np.int32)
  distinct = np.arange(4, dtype=np.int32)
  return [
    ((same, equal), {}),
    ((np.zeros((4, D), I.F32), equal), {}),
    ((same[:1], equal[:1]), {}),
    ((large, distinct), {}),
    ((large, equal), {}),
    ((large, np.array([0, 0, 1, 1], np.int32)), {}),
  ]


def _multiview_edges():
  return [
    ((np.stack([x, x], axis=1), labels), kw)
    for (x, labels), kw in _grouped_edges()
  ]


def _kw(make, **kwargs):
  """``make`` with extra keyword arguments."""

  def with_kwargs(rng, n):
    args, base = make(rng, n)
    return args, {**base, **kwargs}

  return with_kwargs


def _edges_kw(edges, **kwargs):
  return lambda: [(args, {**base, **kwargs}) for args, base in edges()]


def _case(fn, make, edges, name, kwargs=None, **options):
  """A case whose ``kwargs`` go to the random and the edge inputs alike."""
  kwargs = kwargs or {}
  return LossCase(
    fn,
    _kw(make, **kwargs),
    name=name,
    edge_inputs=_edges_kw(edges, **kwargs),
    **options,
  )


def _variants(fn, make, edges, name, kwargs=None, **options):
  """The dense case and its chunked twin (reverse mode only: custom VJP)."""
  chunked = {**(kwargs or {}), "chunk_size": CHUNK}
  return [
    _case(fn, make, edges, name, kwargs, **options),
    _case(
      fn, make, edges, f"{name}[chunk]", chunked, grad_modes=("rev",), **options
    ),
  ]


# Options that act before the similarity matrix (similarity, normalize,
# per-anchor negatives) are dense-only cases: the chunked path is the same.
CASES = [
  *_variants(
    jc.infonce_loss, _pairs, _pair_edges, "infonce_loss", float_args=(0, 1)
  ),
  _case(
    jc.infonce_loss,
    _pairs,
    _pair_edges,
    "infonce_loss[dot]",
    dict(similarity="dot", temperature=0.5),
    float_args=(0, 1),
    max_magnitude=QUADRATIC_RANGE,
  ),
  _case(
    jc.infonce_loss,
    _with_negatives(shared=False),
    _negative_edges(shared=False),
    "infonce_loss[per_anchor_negatives]",
    float_args=(0, 1, 2),
  ),
  *_variants(
    jc.infonce_loss,
    _with_negatives(shared=True),
    _negative_edges(shared=True),
    "infonce_loss[shared_negatives]",
    float_args=(0, 1, 2),
    batch_args=(0, 1),
  ),
  LossCase(
    jc.ntxent,
    lambda rng, n: ((_embeddings(rng, n), I.class_labels(rng, 3, n)), {}),
    edge_inputs=_grouped_edges,
    mean_of_none=False,
  ),
  *_variants(jc.clip_loss, _pairs, _pair_edges, "clip_loss", float_args=(0, 1)),
  _case(
    jc.clip_loss,
    _pairs,
    _pair_edges,
    "clip_loss[unnormalized]",
    dict(normalize=False, temperature=0.5),
    float_args=(0, 1),
    max_magnitude=QUADRATIC_RANGE,
  ),
  *_variants(
    jc.siglip_loss, _pairs, _pair_edges, "siglip_loss", float_args=(0, 1)
  ),
  _case(
    jc.siglip_loss,
    _pairs,
    _pair_edges,
    "siglip_loss[unnormalized]",
    dict(normalize=False, logit_scale=2.0, logit_bias=0.5),
    float_args=(0, 1),
    max_magnitude=QUADRATIC_RANGE,
  ),
  *_variants(
    jc.supervised_contrastive_loss,
    _grouped,
    _grouped_edges,
    "supervised_contrastive_loss",
    dict(temperature=0.5),
    max_magnitude=QUADRATIC_RANGE,  # embeddings used as given: dot products
  ),
  *_variants(
    jc.supervised_contrastive_loss,
    _multiview,
    _multiview_edges,
    "supervised_contrastive_loss[multiview]",
    dict(temperature=0.5),
    max_magnitude=QUADRATIC_RANGE,
  ),
]


# ---- issue 22: a cross-batch memory (MoCo), no in-batch negatives, multi-hot
# SupCon labels. One case per new program.


def _memory():
  """A memory of 8 rows, 5 written (the rest must stay unused)."""
  import jaxloss

  rng = np.random.default_rng(22)
  return jaxloss.update_cross_batch_memory(
    jaxloss.cross_batch_memory(8, D),
    _embeddings(rng, 5),
    np.zeros(5, np.int32),
  )


def _multi_hot(rng, n):
  """Multi-hot labels over 3 classes (some rows without a class)."""
  return (_embeddings(rng, n), rng.random((n, 3)) < 0.5), {}


def _multi_hot_edges():
  return [
    ((x, np.eye(3, dtype=bool)[np.asarray(labels) % 3]), kw)
    for (x, labels), kw in _grouped_edges()
  ]


_MOCO = dict(in_batch_negatives=False, chunk_size=CHUNK)
CASES += [
  # MoCo: the memory's written rows are the only negatives (chunked columns).
  LossCase(
    jc.infonce_loss,
    lambda rng, n: (_pairs(rng, n)[0], {**_MOCO, "memory": _memory()}),
    name="infonce_loss[memory,no_in_batch]",
    float_args=(0, 1),
    edge_inputs=lambda: [
      (args, {**kw, **_MOCO, "memory": _memory()}) for args, kw in _pair_edges()
    ],
    grad_modes=("rev",),
  ),
  # info-nce-pytorch's "paired" mode: each anchor's own negatives only.
  _case(
    jc.infonce_loss,
    _with_negatives(shared=False),
    _negative_edges(shared=False),
    "infonce_loss[per_anchor_negatives,no_in_batch]",
    dict(in_batch_negatives=False),
    float_args=(0, 1, 2),
  ),
  _case(
    jc.supervised_contrastive_loss,
    _multi_hot,
    _multi_hot_edges,
    "supervised_contrastive_loss[multi_hot]",
    dict(temperature=0.5),
    max_magnitude=QUADRATIC_RANGE,
  ),
]
