"""Registry entries for jaxloss.sequence (imported from the module itself, so
that the registry works before the family is re-exported by jaxloss)."""

import functools

import numpy as np

from jaxloss import sequence as js
from jaxloss.testing import LossCase
from tests.cases import _inputs as I

# linear_cross_entropy: [batch, time, dim] hidden states, a vocabulary that the
# chunk does not divide (the last chunk is clamped and rolled).
T, D, V, CHUNK = 3, 4, 11, 4
# ctc_loss: frames, classes (blank 0 included), maximum label length.
FRAMES, K, L = 5, 4, 2

# ctc_loss_with_forward_probs returns a tuple (loss, alphas): it shares
# ctc_loss's code path (covered here) and has its own tests in
# tests/test_sequence.py.
HELPERS = {"ctc_loss_with_forward_probs"}


def _tokens(rng, n, **kwargs):
  """The harness reads the per-example shape from a call with ``kwargs``:
  ``reduction="none"`` there, since this loss defaults to ``"mean"``."""
  hidden = I.logits(rng, n, T, D, scale=1.0)
  weight = I.logits(rng, D, V, scale=1.0)
  return (hidden, weight, I.class_labels(rng, V, n, T)), dict(
    reduction="none", **kwargs
  )


OPTIONS = dict(
  ignore_index=-100,
  label_smoothing=0.1,
  z_loss=1e-3,
  logit_soft_cap=5.0,
  chunk_size=CHUNK,
)


def _options(rng, n):
  """Every option on, a bias, and about a quarter of the labels set to -100
  (ignored)."""
  (hidden, weight, labels), _ = _tokens(rng, n)
  labels = np.where(rng.random(labels.shape) < 0.25, -100, labels)
  if n:
    labels[0, 0] = 1  # a real label first (the harness replaces it)
  return (hidden, weight, labels.astype(np.int32)), dict(
    OPTIONS, reduction="none", bias=I.logits(rng, V, scale=0.5)
  )


def _drop_last_label(inputs):
  (hidden, weight, labels), kwargs = inputs
  return (hidden, weight, labels[:-1]), kwargs


def _token_edges(**kwargs):
  """Logits of ±1e4 (with and without ties), zero hidden states (uniform
  softmax), identical tokens, everything masked."""
  kwargs = dict(reduction="none", **kwargs)

  def edges():
    weight = np.zeros((D, V), I.F32)
    weight[0] = np.where(np.arange(V) % 2 == 0, 1.0, -1.0)
    weight[1, 3] = 1.0
    hidden = np.zeros((4, T, D), I.F32)
    hidden[..., 0] = 1e4 * np.array([1, -1, 1], I.F32)
    labels = np.tile(np.array([0, 1, 3], np.int32), (4, 1))
    same = np.ones((4, T, D), I.F32)
    return [
      ((hidden, weight, labels), kwargs),
      ((-hidden, weight, labels), kwargs),
      ((np.zeros_like(hidden), weight, labels), kwargs),
      ((same, I.extreme_logits(D, V), labels), kwargs),
      ((hidden, weight, labels), {**kwargs, "where": np.zeros((4, T), bool)}),
    ]

  return edges


# linear_log_probs returns per-token values with no reduction, where or
# weights (reductions=(); per_example=False skips the checks that pass
# `where`/`reduction`, among them the invalid-label check, which
# tests/test_linear_losses.py makes by hand with checked()). Its entropy is
# checked through a wrapper of the same name and signature returning
# log p + entropy (the harness takes one array).
LOG_PROB_OPTIONS = dict(temperature=0.7, logit_soft_cap=5.0, chunk_size=CHUNK)


def _log_probs(rng, n, **kwargs):
  (hidden, weight, labels), _ = _tokens(rng, n)
  if kwargs.get("bias") is True:
    kwargs["bias"] = I.logits(rng, V, scale=0.5)
  return (hidden, weight, labels), kwargs


@functools.wraps(js.linear_log_probs)
def _log_probs_plus_entropy(*args, **kwargs):
  log_p, entropy = js.linear_log_probs(*args, return_entropy=True, **kwargs)
  return log_p + entropy


def _log_prob_edges(**kwargs):
  """linear_cross_entropy's edges (logits of ±1e4, a uniform softmax, ±1e4
  alternating) without the masked one (no `where`)."""
  return lambda: [
    (args, {**kwargs, **{k: v for k, v in extra.items() if k != "reduction"}})
    for args, extra in _token_edges()()
    if "where" not in extra
  ]


def _log_probs_case(fn, make_inputs, name, edges, **options):
  return LossCase(
    fn,
    make_inputs,
    name=name,
    float_args=(0, 1),
    batch_args=(0, 2),
    wrong_shape=_drop_last_label,
    edge_inputs=edges,
    reductions=(),
    per_example=False,
    max_magnitude=1e15,
    **options,
  )


def _ctc(rng, n, blank_id=0, **kwargs):
  logits = I.logits(rng, n, FRAMES, K)
  frames = rng.integers(3, FRAMES + 1, size=n)
  logit_paddings = (np.arange(FRAMES)[None] >= frames[:, None]).astype(I.F32)
  labels = rng.integers(1, K, size=(n, L))
  labels = np.where(labels == blank_id, 0, labels).astype(np.int32)
  if n:
    labels[0] = [2, 2]  # a repeat: needs a blank between its frames.
  if blank_id:
    kwargs["blank_id"] = blank_id
  lengths = rng.integers(0, L + 1, size=n)
  lengths[:2] = np.maximum(lengths[:2], 1)  # the label check's examples
  label_paddings = (np.arange(L)[None] >= lengths[:, None]).astype(I.F32)
  return (logits, logit_paddings, labels, label_paddings), kwargs


def _ctc_edges():
  """Logits of ±1e4; an infeasible target (a repeat in fewer frames than it
  needs); all frames padded; all labels padded."""
  logits = I.extreme_logits(3, FRAMES, K)
  no_padding = np.zeros((3, FRAMES), I.F32)
  labels = np.array([[1, 2], [3, 3], [1, 1]], np.int32)
  no_label_padding = np.zeros((3, L), I.F32)
  short = no_padding.copy()
  short[:, 2:] = 1.0  # two frames for "1 1", which needs three.
  return [
    ((logits, no_padding, labels, no_label_padding), {}),
    ((-logits, short, labels, no_label_padding), {}),
    ((logits, np.ones_like(no_padding), labels, no_label_padding), {}),
    ((logits, no_padding, labels, np.ones_like(no_label_padding)), {}),
  ]


# ctc_loss's documented range: log-probabilities above log_epsilon (logits up
# to -log_epsilon / 2 in magnitude), so the 1e15+ scales are outside it.
CTC_RANGE = dict(label_arg=2, num_classes=K, max_magnitude=5e4)


def _tokens_case(make_inputs, name, edges, **options):
  """A linear_cross_entropy case: hidden and weight differentiated, hidden
  and labels batched, the wrong shape a label short."""
  return LossCase(
    js.linear_cross_entropy,
    make_inputs,
    name=name,
    float_args=(0, 1),
    batch_args=(0, 2),
    wrong_shape=_drop_last_label,
    edge_inputs=edges,
    label_arg=2,
    num_classes=V,
    # The logits hidden @ weight overflow float32 at 1e19 per input (the
    # documented range: entries up to 1e15).
    max_magnitude=1e15,
    **options,
  )


CASES = [
  _tokens_case(_tokens, "linear_cross_entropy", _token_edges()),
  _tokens_case(
    lambda rng, n: _tokens(rng, n, chunk_size=CHUNK),
    "linear_cross_entropy[chunk]",
    _token_edges(chunk_size=CHUNK),
    grad_modes=("rev",),
  ),
  _tokens_case(
    _options,
    "linear_cross_entropy[chunk,options]",
    _token_edges(**OPTIONS),
    grad_modes=("rev",),
    mean_of_none=False,
  ),
  _log_probs_case(
    js.linear_log_probs, _log_probs, "linear_log_probs", _log_prob_edges()
  ),
  _log_probs_case(
    _log_probs_plus_entropy,
    lambda rng, n: _log_probs(rng, n, bias=True, **LOG_PROB_OPTIONS),
    "linear_log_probs[entropy,chunk,options]",
    _log_prob_edges(**LOG_PROB_OPTIONS),
    grad_modes=("rev",),
  ),
  LossCase(js.ctc_loss, _ctc, edge_inputs=_ctc_edges, **CTC_RANGE),
  LossCase(
    js.ctc_loss,
    lambda rng, n: _ctc(rng, n, blank_id=K - 1, log_epsilon=-1e4),
    name="ctc_loss[blank_id,log_epsilon]",
    **{**CTC_RANGE, "max_magnitude": 5e3},
  ),
]
