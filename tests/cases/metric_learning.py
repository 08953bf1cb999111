"""Registry entries for jaxloss.metric_learning."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

D = 4  # embedding dimension
C = 5  # classes (ArcFace, CosFace, Proxy-NCA)
# The input magnitude that losses quadratic in their inputs (squared
# distances, dot products) document: float32 squares overflow from ~1.8e19.
QUADRATIC_RANGE = 1e15
LABELS = dict(label_arg=1, num_classes=C)
U = 3  # utterances per speaker (GE2E)


def _embeddings(rng, *shape):
  return rng.normal(size=shape).astype(I.F32)


def _repeated(*shape):
  """Identical embeddings: every distance is exactly 0."""
  return np.broadcast_to(
    np.linspace(-1.0, 1.0, shape[-1], dtype=I.F32), shape
  ).copy()


def _edge_vectors(count, n=4):
  """``count`` arrays that are all identical, then all zero."""
  return [
    tuple(_repeated(n, D) for _ in range(count)),
    tuple(np.zeros((n, D), I.F32) for _ in range(count)),
  ]


# ---- triplets and pairs ------------------------------------------------------


def _triplets(rng, n, **kwargs):
  return tuple(_embeddings(rng, n, D) for _ in range(3)), kwargs


def _triplet_edges(**kwargs):
  return lambda: [(args, kwargs) for args in _edge_vectors(3)]


def _pairs(rng, n):
  return (_embeddings(rng, n, D), _embeddings(rng, n, D)), {}


def _pair_edges(**kwargs):
  return lambda: [(args, kwargs) for args in _edge_vectors(2)]


def _contrastive(rng, n):
  return (_embeddings(rng, n, D), _embeddings(rng, n, D), I.binary(rng, n)), {}


def _contrastive_edges():
  labels = np.array([1.0, 0.0, 1.0, 0.0], I.F32)
  return [(args + (labels,), {}) for args in _edge_vectors(2)]


# ---- in-batch mining -------------------------------------------------------


def _mining(distance):
  def make(rng, n):
    # Every class appears at least twice, so every anchor has a positive and a
    # negative and "mean" is the mean of the per-anchor values.
    labels = rng.permutation(np.arange(n) % max(n // 2, 1)).astype(np.int32)
    return (_embeddings(rng, n, D), labels), {"distance": distance}

  return make


def _mining_edges(distance):
  def edges():
    kw = {"distance": distance}
    two_classes = np.array([0, 0, 1, 1], np.int32)
    return [
      ((_repeated(4, D), two_classes), kw),
      ((np.zeros((4, D), I.F32), two_classes), kw),
      (
        (_embeddings(np.random.default_rng(0), 4, D), np.zeros(4, np.int32)),
        kw,
      ),  # one class: no negatives
      (
        (
          _embeddings(np.random.default_rng(1), 4, D),
          np.arange(4, dtype=np.int32),
        ),
        kw,
      ),
    ]  # no positives

  return edges


def _mining_cases(fn, **flags):
  return [
    LossCase(
      fn,
      _mining(distance),
      name=f"{fn.__name__}[{distance}]",
      edge_inputs=_mining_edges(distance),
      max_magnitude=QUADRATIC_RANGE
      if distance == "squared_euclidean"
      else None,
      **flags,
    )
    for distance in ("euclidean", "squared_euclidean", "cosine")
  ]


# ---- proxies, GE2E, angular margins ------------------------------------------


def _proxy_nca(rng, n):
  return (
    _embeddings(rng, n, D),
    I.class_labels(rng, C, n),
    _embeddings(rng, C, D),
  ), {}


def _proxy_edges():
  proxies = _embeddings(np.random.default_rng(0), C, D)
  labels = np.arange(4, dtype=np.int32)
  return [
    ((proxies[:4].copy(), labels, proxies), {}),  # at its own proxy
    ((np.zeros((4, D), I.F32), labels, proxies), {}),
    ((100 * proxies[:4], labels, -100 * proxies), {}),
  ]  # logits ~1e4


def _ge2e(method):
  return lambda rng, n: ((_embeddings(rng, n, U, D),), {"method": method})


def _ge2e_edges(method):
  kw = {"method": method}
  return lambda: [
    ((_repeated(3, U, D),), kw),
    ((np.zeros((3, U, D), I.F32),), kw),
    ((_embeddings(np.random.default_rng(0), 1, U, D),), kw),
  ]


def _one_utterance(inputs):
  (embeddings,), kwargs = inputs
  return (embeddings[:, :1],), kwargs


def _cosines(rng, n, **kwargs):
  # Away from ±1 and from ArcFace's switch to its fallback at cos θ = −cos m,
  # where finite differences would straddle the kink.
  cosines = rng.uniform(-0.85, 0.95, size=(n, C)).astype(I.F32)
  return (cosines, I.class_labels(rng, C, n)), kwargs


def _cosine_edges(**kwargs):
  def edges():
    labels = np.array([0, 1, 2, 3], np.int32)
    exact = np.tile(np.array([1.0, -1.0, 0.0, 1.0, -1.0], I.F32), (4, 1))
    return [((exact, labels), kwargs), ((-exact, labels), kwargs)]

  return edges


def _uniformity_edges():
  return [
    ((_repeated(4, D),), {}),
    ((np.zeros((4, D), I.F32),), {}),
    ((_embeddings(np.random.default_rng(0), 1, D),), {}),
  ]  # no pairs


CASES = [
  LossCase(
    jl.triplet_margin_loss,
    _triplets,
    float_args=(0, 1, 2),
    edge_inputs=_triplet_edges(),
  ),
  LossCase(
    jl.triplet_margin_loss,
    lambda rng, n: _triplets(rng, n, norm_degree=1, swap=True, eps=0.0),
    name="triplet_margin_loss[p=1,swap,eps=0]",
    float_args=(0, 1, 2),
    edge_inputs=_triplet_edges(norm_degree=1, swap=True, eps=0.0),
  ),
  LossCase(
    jl.triplet_margin_loss,
    lambda rng, n: _triplets(rng, n, norm_degree=3, margin=2.0),
    name="triplet_margin_loss[p=3]",
    float_args=(0, 1, 2),
    edge_inputs=_triplet_edges(norm_degree=3),
  ),
  LossCase(
    jl.contrastive_loss,
    _contrastive,
    float_args=(0, 1),
    edge_inputs=_contrastive_edges,
    max_magnitude=QUADRATIC_RANGE,
  ),
  LossCase(
    jl.angular_loss,
    _triplets,
    float_args=(0, 1, 2),
    edge_inputs=_triplet_edges(),
    max_magnitude=QUADRATIC_RANGE,
  ),
  *_mining_cases(jl.batch_hard_triplet_loss),
  # "mean" leaves out anchors with no active triplet, which depends on the
  # values: it is not the mean of the "none" values in general.
  *_mining_cases(jl.batch_all_triplet_loss, mean_of_none=False),
  *_mining_cases(jl.semi_hard_triplet_loss),
  LossCase(
    jl.npair_loss,
    _pairs,
    float_args=(0, 1),
    edge_inputs=_pair_edges(),
    max_magnitude=QUADRATIC_RANGE,
  ),
  LossCase(
    jl.npair_loss,
    lambda rng, n: (_pairs(rng, n)[0], {"l2_reg": 0.01}),
    name="npair_loss[l2_reg]",
    float_args=(0, 1),
    edge_inputs=_pair_edges(l2_reg=0.01),
    max_magnitude=QUADRATIC_RANGE,
  ),
  # The proxies are shared by the batch, not batch-shaped.
  LossCase(
    jl.proxy_nca_loss,
    _proxy_nca,
    float_args=(0, 2),
    batch_args=(0, 1),
    edge_inputs=_proxy_edges,
    max_magnitude=QUADRATIC_RANGE,
    **LABELS,
  ),
  LossCase(
    jl.ge2e_loss,
    _ge2e("softmax"),
    name="ge2e_loss[softmax]",
    edge_inputs=_ge2e_edges("softmax"),
    wrong_shape=_one_utterance,
  ),
  LossCase(
    jl.ge2e_loss,
    _ge2e("contrast"),
    name="ge2e_loss[contrast]",
    edge_inputs=_ge2e_edges("contrast"),
    wrong_shape=_one_utterance,
  ),
  # Cosines are bounded by definition: no huge magnitudes.
  LossCase(
    jl.arcface_loss,
    _cosines,
    edge_inputs=_cosine_edges(),
    magnitude_args=(),
    **LABELS,
  ),
  LossCase(
    jl.arcface_loss,
    lambda rng, n: _cosines(rng, n, easy_margin=True, scale=16.0),
    name="arcface_loss[easy_margin]",
    edge_inputs=_cosine_edges(easy_margin=True),
    magnitude_args=(),
    **LABELS,
  ),
  LossCase(
    jl.cosface_loss,
    _cosines,
    edge_inputs=_cosine_edges(),
    magnitude_args=(),
    **LABELS,
  ),
  LossCase(
    jl.alignment_loss,
    _pairs,
    float_args=(0, 1),
    edge_inputs=_pair_edges(),
    max_magnitude=QUADRATIC_RANGE,
  ),
  LossCase(
    jl.alignment_loss,
    lambda rng, n: (_pairs(rng, n)[0], {"alpha": 1}),
    name="alignment_loss[alpha=1]",
    float_args=(0, 1),
    edge_inputs=_pair_edges(alpha=1),
  ),
  # The log of a mean over all pairs does not split into per-example
  # values: the loss is a batch-level scalar for every reduction.
  LossCase(
    jl.uniformity_loss,
    lambda rng, n: ((_embeddings(rng, n, D),), {}),
    per_example=False,
    edge_inputs=_uniformity_edges,
    max_magnitude=QUADRATIC_RANGE,
    wrong_shape=lambda inputs: ((inputs[0][0][0],), inputs[1]),
  ),
]


# ---- issue 22: pytorch-metric-learning's pair, proxy and multi-centre losses

K = 3  # centres per class (SoftTriple, sub-center ArcFace)


def _pml_batch(rng, n):
  # Every class appears at least twice (each anchor has a positive and a
  # negative), so "mean" is the mean of the per-anchor values.
  labels = rng.permutation(np.arange(n) % max(n // 2, 1)).astype(np.int32)
  return (_embeddings(rng, n, D), labels), {}


def _pml_edges():
  rng = np.random.default_rng(0)
  two_classes = np.array([0, 0, 1, 1], np.int32)
  return [
    ((_repeated(4, D), two_classes), {}),
    ((np.zeros((4, D), I.F32), two_classes), {}),
    ((_embeddings(rng, 4, D), np.zeros(4, np.int32)), {}),  # no negatives
    ((_embeddings(rng, 4, D), np.arange(4, dtype=np.int32)), {}),  # no pos.
  ]


def _pml_case(fn, **flags):
  return LossCase(fn, _pml_batch, edge_inputs=_pml_edges, **flags)


def _proxy_anchor(rng, n):
  return (
    _embeddings(rng, n, D),
    I.class_labels(rng, C, n),
    _embeddings(rng, C, D),
  ), {}


def _proxy_anchor_edges():
  proxies = _embeddings(np.random.default_rng(0), C, D)
  labels = np.arange(4, dtype=np.int32)
  return [
    ((proxies[:4].copy(), labels, proxies), {}),  # at its own proxy
    ((np.zeros((4, D), I.F32), labels, proxies), {}),
    ((proxies[:4].copy(), labels, np.zeros_like(proxies)), {}),
    ((_repeated(4, D), np.zeros(4, np.int32), proxies), {}),
  ]


def _multi_center_cosines(rng, n):
  # Away from ±1 and from ArcFace's switch to its fallback (sub-center
  # ArcFace), where finite differences would straddle a kink; distinct
  # values, so the closest sub-centre is unique.
  cosines = rng.uniform(-0.85, 0.95, size=(n, C, K)).astype(I.F32)
  return (cosines, I.class_labels(rng, C, n)), {}


def _multi_center_edges():
  labels = np.array([0, 1, 2, 3], np.int32)
  exact = np.tile(np.array([1.0, -1.0, 0.0, 1.0, -1.0], I.F32), (4, 1))
  exact = np.repeat(exact[..., None], K, axis=-1)
  return [((exact, labels), {}), ((-exact, labels), {})]


def _drop_sub_center_axis(inputs):
  (cosines, labels), kwargs = inputs
  return (cosines[..., 0], labels), kwargs


CASES += [
  _pml_case(jl.multi_similarity_loss),
  # The weights of circle loss are constants for the gradient
  # (stop_gradient, as in the paper and pytorch-metric-learning), so its
  # gradient is not the derivative that finite differences measure: it is
  # checked against torch autograd in tests/test_metric_learning_pml.py.
  _pml_case(jl.circle_loss, grad_modes=()),
  # "mean" is the mean over the positive pairs: each anchor's value is
  # weighted by its number of pairs, not the mean of the "none" values.
  _pml_case(jl.lifted_structure_loss, mean_of_none=False),
  _pml_case(jl.generalized_lifted_structure_loss),
  _pml_case(jl.tuplet_margin_loss, mean_of_none=False),
  _pml_case(jl.fast_ap_loss),
  # A batch-level scalar (the log of sums over the batch per proxy); the
  # proxies are shared, not batch-shaped.
  LossCase(
    jl.proxy_anchor_loss,
    _proxy_anchor,
    float_args=(0, 2),
    batch_args=(0, 1),
    per_example=False,
    edge_inputs=_proxy_anchor_edges,
  ),
  # Cosines are bounded by definition: no huge magnitudes.
  LossCase(
    jl.soft_triple_loss,
    _multi_center_cosines,
    edge_inputs=_multi_center_edges,
    magnitude_args=(),
    wrong_shape=_drop_sub_center_axis,
    **LABELS,
  ),
  LossCase(
    jl.sub_center_arcface_loss,
    _multi_center_cosines,
    edge_inputs=_multi_center_edges,
    magnitude_args=(),
    wrong_shape=_drop_sub_center_axis,
    **LABELS,
  ),
]


# ---- issue 22: a cross-batch memory, explicit N-pair negatives, the unsquared
# contrastive loss. One case per new program.

HELPERS = {"cross_batch_memory", "update_cross_batch_memory"}


def _memory():
  """A memory of 8 rows, 5 written (the rest must stay unused)."""
  rng = np.random.default_rng(22)
  return jl.update_cross_batch_memory(
    jl.cross_batch_memory(8, D),
    _embeddings(rng, 5, D),
    rng.integers(0, 3, 5).astype(np.int32),
  )


def _with_memory(make):
  def with_memory(rng, n):
    args, kwargs = make(rng, n)
    return args, {**kwargs, "memory": _memory()}

  return with_memory


def _npair_with_negatives(anchors, positives, negatives, **kwargs):
  """``npair_loss`` with its keyword-only ``negatives`` given by position
  (the harness slices and vmaps positional arrays)."""
  return jl.npair_loss(anchors, positives, negatives=negatives, **kwargs)


_npair_with_negatives.__name__ = "npair_loss"


def _npair_negatives(rng, n):
  return (
    _embeddings(rng, n, D),
    _embeddings(rng, n, D),
    _embeddings(rng, n, 2, D),
  ), {}


CASES += [
  LossCase(
    jl.batch_hard_triplet_loss,
    _with_memory(_mining("euclidean")),
    name="batch_hard_triplet_loss[memory]",
    edge_inputs=lambda: [
      (args, {**kw, "memory": _memory()})
      for args, kw in _mining_edges("euclidean")()
    ],
  ),
  LossCase(
    _npair_with_negatives,
    _npair_negatives,
    name="npair_loss[negatives]",
    float_args=(0, 1, 2),
    edge_inputs=lambda: [
      (args + (np.stack([args[0], -args[1]], axis=1),), {})
      for args, _ in _pair_edges()()
    ],
    max_magnitude=QUADRATIC_RANGE,
  ),
  LossCase(
    jl.contrastive_loss,
    lambda rng, n: (_contrastive(rng, n)[0], {"squared": False}),
    name="contrastive_loss[unsquared]",
    float_args=(0, 1),
    edge_inputs=lambda: [
      (args, {"squared": False}) for args, _ in _contrastive_edges()
    ],
  ),
]
