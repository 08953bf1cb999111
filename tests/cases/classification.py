"""Registry entries for jaxloss.classification (the cross-entropy side)."""

import numpy as np

import jaxloss as jl
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

C = 4  # classes
T, V = 3, 5  # perplexity: time steps, vocabulary

HELPERS = {
  "smooth_labels",
  "class_weights_from_counts",
  "pos_weight_from_counts",
}

WEIGHTS = np.array([1.0, 2.0, 0.5, 1.0], I.F32)

# Integer class labels in [0, C) in argument 1 (the out-of-range label check).
LABELS = {"label_arg": 1, "num_classes": C}


def _binary(rng, n, **kwargs):
  return (I.logits(rng, n, 3), I.binary(rng, n, 3)), kwargs


def _soft(rng, n, **kwargs):
  return (I.logits(rng, n, C), I.distributions(rng, n, C)), kwargs


def _integer(rng, n, **kwargs):
  return (I.logits(rng, n, C), I.class_labels(rng, C, n)), kwargs


def _ignored(rng, n):
  """Integer labels with about a third set to torch's ignore_index, -100."""
  (logits, labels), _ = _integer(rng, n)
  labels = np.where(rng.random(n) < 0.3, -100, labels).astype(np.int32)
  labels[:1] = 1  # (a batch of 0 has no first example)
  return (logits, labels), {"ignore_index": -100, "class_weights": WEIGHTS}


def _log_probs(rng, n, **kwargs):
  (logits, labels), _ = _integer(rng, n)
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  return (log_p.astype(I.F32), labels), kwargs


def _tokens(rng, n, **kwargs):
  return (I.logits(rng, n, T, V), I.class_labels(rng, V, n, T)), kwargs


def _padded_tokens(rng, n):
  (logits, labels), _ = _tokens(rng, n)
  lengths = rng.integers(0, T + 1, size=n)
  where = np.arange(T)[None, :] < lengths[:, None]
  return (logits, labels), {"where": where, "per_sequence": True}


def _extreme_binary():
  return [
    (
      (I.extreme_logits(4, 3), np.tile([0.0, 1.0, 0.5], (4, 1)).astype(I.F32)),
      {},
    )
  ]


def _extreme_soft():
  return [((I.extreme_logits(4, C), np.eye(C, dtype=I.F32)), {})]


def _extreme_integer(**kwargs):
  certain = np.full((4, C), -1e4, I.F32)
  certain[np.arange(4), np.arange(4)] = 1e4  # p_y = 1 exactly
  labels = np.arange(4, dtype=np.int32)
  return lambda: [
    ((I.extreme_logits(4, C), labels), kwargs),
    ((-I.extreme_logits(4, C), labels), kwargs),
    ((certain, labels), kwargs),
  ]


def _ruled_out():
  """Logits of -inf where the label is 0 (the point of the safe variant)."""
  logits = np.array([[0.0, -np.inf, 1.0, 2.0]] * 3, I.F32)
  labels = np.array([[0.5, 0.0, 0.5, 0.0]] * 3, I.F32)
  return _extreme_soft() + [((logits, labels), {})]


def _extreme_log_probs():
  log_p = np.array([[0.0, -1e4, -1e4, -1e4]] * 4, I.F32)
  return [((log_p, np.array([0, 1, 0, 3], np.int32)), {})]


def _extreme_tokens(**kwargs):
  labels = np.zeros((4, T), np.int32)
  empty = {**kwargs, "where": np.zeros((4, T), bool)}
  return lambda: [
    ((I.extreme_logits(4, T, V), labels), kwargs),
    ((I.extreme_logits(4, T, V), labels), empty),
  ]


CASES = [
  LossCase(
    jl.sigmoid_binary_cross_entropy,
    _binary,
    float_args=(0, 1),
    magnitude_args=(0,),  # labels lie in [0, 1]
    edge_inputs=_extreme_binary,
  ),
  LossCase(
    jl.sigmoid_binary_cross_entropy,
    lambda rng, n: _binary(
      rng,
      n,
      pos_weight=np.array([1.0, 2.0, 0.5], I.F32),
      class_weights=np.array([0.5, 1.0, 3.0], I.F32),
      label_smoothing=0.1,
    ),
    name="sigmoid_binary_cross_entropy[pos_weight,class_weights,smoothing]",
    float_args=(0, 1),
    magnitude_args=(0,),
    edge_inputs=_extreme_binary,
  ),
  LossCase(
    jl.binary_cross_entropy,
    lambda rng, n: (
      (I.probabilities(rng, n, 3), I.binary(rng, n, 3)),
      {"class_weights": np.array([0.5, 1.0, 3.0], I.F32)},
    ),
    name="binary_cross_entropy[class_weights]",
    float_args=(0, 1),
    magnitude_args=(),  # probabilities and labels lie in [0, 1]
    edge_inputs=lambda: [
      (
        (
          np.array([[0.0, 1.0, 0.5]] * 2, I.F32),
          np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], I.F32),
        ),
        {},
      )
    ],
  ),
  LossCase(
    jl.softmax_cross_entropy,
    _soft,
    float_args=(0, 1),
    magnitude_args=(0,),  # labels are distributions
    edge_inputs=_extreme_soft,
  ),
  LossCase(
    jl.softmax_cross_entropy,
    lambda rng, n: _soft(rng, n, label_smoothing=0.2, class_weights=WEIGHTS),
    name="softmax_cross_entropy[smoothing,class_weights]",
    float_args=(0, 1),
    magnitude_args=(0,),
    edge_inputs=_extreme_soft,
  ),
  LossCase(
    jl.safe_softmax_cross_entropy,
    _soft,
    float_args=(0, 1),
    magnitude_args=(0,),  # labels are distributions
    edge_inputs=_ruled_out,
  ),
  LossCase(
    jl.softmax_cross_entropy_with_integer_labels,
    _integer,
    edge_inputs=_extreme_integer(),
    **LABELS,
  ),
  LossCase(
    jl.softmax_cross_entropy_with_integer_labels,
    lambda rng, n: _integer(rng, n, label_smoothing=0.1, class_weights=WEIGHTS),
    name="softmax_cross_entropy_with_integer_labels[smoothing,weights]",
    mean_of_none=False,
    edge_inputs=_extreme_integer(label_smoothing=0.1),
    **LABELS,
  ),
  LossCase(
    jl.softmax_cross_entropy_with_integer_labels,
    _ignored,
    name="softmax_cross_entropy_with_integer_labels[ignore_index]",
    mean_of_none=False,
    **LABELS,
  ),
  LossCase(
    jl.softmax_cross_entropy_with_integer_labels,
    lambda rng, n: (
      (I.logits(rng, n, 2, 3), I.class_labels(rng, 6, n)),
      {"axis": (1, 2)},
    ),
    name="softmax_cross_entropy_with_integer_labels[axis=(1,2)]",
    label_arg=1,
    num_classes=6,
  ),
  LossCase(
    jl.nll_loss,
    _log_probs,
    edge_inputs=_extreme_log_probs,
    **LABELS,
  ),
  LossCase(
    jl.nll_loss,
    lambda rng, n: (_log_probs(rng, n)[0], _ignored(rng, n)[1]),
    name="nll_loss[class_weights,ignore_index]",
    mean_of_none=False,
    **LABELS,
  ),
  # Focal losses: labels are targets, not differentiated (the log-space focal
  # weight, as in optax, has no derivative in the labels at exactly 0 or 1).
  LossCase(jl.sigmoid_focal_loss, _binary, edge_inputs=_extreme_binary),
  LossCase(
    jl.sigmoid_focal_loss,
    lambda rng, n: _binary(rng, n, alpha=0.25, gamma=0.5),
    name="sigmoid_focal_loss[alpha,gamma<1]",
    edge_inputs=_extreme_binary,
  ),
  LossCase(jl.poly1_focal_loss, _binary, edge_inputs=_extreme_binary),
  LossCase(
    jl.poly1_focal_loss,
    lambda rng, n: _binary(rng, n, alpha=0.25, gamma=0.5, epsilon=-0.5),
    name="poly1_focal_loss[alpha,gamma<1]",
    edge_inputs=_extreme_binary,
  ),
  LossCase(
    jl.softmax_focal_loss, _integer, edge_inputs=_extreme_integer(), **LABELS
  ),
  LossCase(
    jl.softmax_focal_loss,
    lambda rng, n: _integer(rng, n, alpha=WEIGHTS, gamma=0.5),
    name="softmax_focal_loss[class_alpha,gamma<1]",
    edge_inputs=_extreme_integer(alpha=WEIGHTS, gamma=0.5),
    **LABELS,
  ),
  LossCase(
    jl.poly_loss_cross_entropy,
    _soft,
    float_args=(0, 1),
    magnitude_args=(0,),  # labels are distributions
    edge_inputs=_extreme_soft,
  ),
  # perplexity is a metric: one value for the corpus (or per sequence) with
  # no per-example values to mask, weight or reduce, hence per_example=False
  # and no reductions; its masking is tested in tests/test_classification.py.
  LossCase(
    jl.perplexity,
    _tokens,
    per_example=False,
    reductions=(),
    edge_inputs=_extreme_tokens(),
    label_arg=1,
    num_classes=V,
  ),
  LossCase(
    jl.perplexity,
    _padded_tokens,
    name="perplexity[per_sequence,where]",
    per_example=False,
    reductions=(),
    edge_inputs=_extreme_tokens(per_sequence=True),
    label_arg=1,
    num_classes=V,
  ),
]

# --------------------------------------------------------------------------- #
# The bi-tempered logistic loss (issue 23 §4): two cases, because t2 picks
# the program: a fixed point for t2 > 1 (integer labels, one-hot encoded:
# the out-of-range label check) and a bisection for t2 < 1 (soft labels,
# label smoothing). Enough iterations that the normalisation converges in
# float64, so that the closed-form gradient (exact at convergence) meets the
# finite differences of the gradient check.


def _bi_tempered(labels, **kwargs):
  def make(rng, n):
    return (I.logits(rng, n, C), labels(rng, n)), kwargs

  def edges():
    big = I.extreme_logits(2, C)
    return [
      ((big, labels(np.random.default_rng(0), 2)), kwargs),
      ((np.zeros((2, C), I.F32), labels(np.random.default_rng(1), 2)), kwargs),
    ]

  return make, edges


_BT_HEAVY = _bi_tempered(
  lambda rng, n: I.class_labels(rng, C, n), t1=0.8, t2=1.2, num_iters=40
)
_BT_FINITE = _bi_tempered(
  lambda rng, n: I.distributions(rng, n, C),
  t1=0.5,
  t2=0.7,
  num_iters=60,
  label_smoothing=0.1,
)

CASES += [
  LossCase(
    jl.bi_tempered_logistic_loss,
    _BT_HEAVY[0],
    name="bi_tempered_logistic_loss[t2>1,integer]",
    edge_inputs=_BT_HEAVY[1],
    grad_modes=("rev",),
    # Heavy tails: a far class's gradient decays as a power of the logits,
    # |x|^(−(t2−t1)/(t2−1)) = |x|^−2 here, ~1e-59 at 1e30: below float32's
    # smallest number (the float32 gradient is 0). Representable up to 1e19.
    max_magnitude=1e19,
    **LABELS,
  ),
  LossCase(
    jl.bi_tempered_logistic_loss,
    _BT_FINITE[0],
    name="bi_tempered_logistic_loss[t2<1,soft,smoothing]",
    edge_inputs=_BT_FINITE[1],
    grad_modes=("rev",),
  ),
]
