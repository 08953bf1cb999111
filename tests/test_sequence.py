"""Value tests for jaxloss.sequence.

References:

* ``linear_cross_entropy``: the materialised logits ``hidden @ weight + bias``
  fed to :func:`jaxloss.softmax_cross_entropy_with_integer_labels` (with the
  z-loss and the soft cap added by hand), and a float64 NumPy formula written
  here; the chunked path (custom VJP) must equal both in value and in the
  gradients of ``hidden``, ``weight``, ``bias`` and a traced soft cap.
* ``ctc_loss``: a float64 NumPy CTC forward algorithm written here on the
  extended label sequence (Graves et al. 2006, Eq. 6–8), its numerical
  gradient, and ``optax.losses.ctc_loss``.

The shared properties (jit, vmap, where ≡ slicing, dtypes, edge cases, …) run
over tests/cases/sequence.py in tests/test_properties.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss import sequence as js
from jaxloss.testing import assert_close
from tests.assertions import linear_temp_bytes, scan_lengths

F64_TOL = dict(rtol=1e-10, atol=1e-10)
F32_TOL = dict(rtol=1e-5, atol=1e-5)
IGNORE = -100


def _rng(seed):
  return np.random.default_rng(seed)


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


# --------------------------------------------------------------------------- #
# linear_cross_entropy: references


def _np_lse(x):
  peak = np.max(x, axis=-1, keepdims=True)
  return peak[..., 0] + np.log(np.sum(np.exp(x - peak), axis=-1))


def numpy_linear_cross_entropy(
  hidden,
  weight,
  labels,
  bias=None,
  keep=None,
  label_smoothing=0.0,
  z_loss=0.0,
  cap=None,
):
  """Per-token float64 values, written from torch's ``cross_entropy`` (ε
  spread over all V classes) plus PaLM's ``z_loss · lse²``; masked tokens 0."""
  z = np.float64(hidden) @ np.float64(weight)
  if bias is not None:
    z = z + np.float64(bias)
  if cap is not None:
    z = cap * np.tanh(z / cap)
  lse = _np_lse(z)
  safe = np.where(keep, labels, 0) if keep is not None else labels
  log_p = z - lse[..., None]
  nll = -np.take_along_axis(log_p, safe[..., None], -1)[..., 0]
  smooth = -np.mean(log_p, axis=-1)
  values = (
    (1 - label_smoothing) * nll + label_smoothing * smooth + z_loss * lse**2
  )
  return values if keep is None else np.where(keep, values, 0.0)


def naive_linear_cross_entropy(
  hidden,
  weight,
  labels,
  *,
  bias=None,
  where=None,
  ignore_index=None,
  label_smoothing=0.0,
  z_loss=0.0,
  logit_soft_cap=None,
  reduction="mean",
):
  """The same loss on materialised logits, through jaxloss' classification
  cross-entropy."""
  logits = hidden @ weight
  if bias is not None:
    logits = logits + bias[None, None, :]
  if logit_soft_cap is not None:
    logits = logit_soft_cap * jnp.tanh(logits / logit_soft_cap)
  keep = jnp.ones(labels.shape, bool) if where is None else where
  if ignore_index is not None:
    keep = keep & (labels != ignore_index)
  values = jaxloss.softmax_cross_entropy_with_integer_labels(
    logits, labels, where=keep, label_smoothing=label_smoothing
  )
  values = values + jnp.where(
    keep, z_loss * jnp.square(jax.nn.logsumexp(logits, axis=-1)), 0
  )
  if reduction == "none":
    return values
  if reduction == "sum":
    return jnp.sum(values)
  return jnp.sum(values) / jnp.maximum(jnp.sum(keep), 1)


B, T, D, V = 2, 3, 5, 11


def _lce_inputs(seed, dtype, vocab=V):
  rng = _rng(seed)
  hidden = rng.normal(size=(B, T, D)).astype(dtype)
  weight = rng.normal(size=(D, vocab)).astype(dtype)
  bias = (0.5 * rng.normal(size=vocab)).astype(dtype)
  labels = rng.integers(0, vocab, size=(B, T)).astype(np.int32)
  labels[0, 1] = IGNORE
  labels[1, 2] = vocab - 1  # a label in the last (clamped, rolled) chunk.
  where = np.ones((B, T), bool)
  where[1, 0] = False
  return hidden, weight, bias, labels, where


# name -> options (the soft cap, when present, is passed traced).
OPTIONS = {
  "plain": dict(),
  "ignore_index,z_loss,soft_cap": dict(
    ignore_index=IGNORE, z_loss=1e-2, logit_soft_cap=2.5
  ),
  "bias,where,label_smoothing": dict(
    bias=True, where=True, label_smoothing=0.2
  ),
  "all": dict(
    bias=True,
    where=True,
    ignore_index=IGNORE,
    label_smoothing=0.1,
    z_loss=1e-2,
    logit_soft_cap=2.5,
  ),
}


def _all_reductions(chunk_size, inputs, options, dtype):
  """Values for "none", "sum" and "mean", and the gradients with respect to
  hidden, weight, bias and the soft cap of "none" (pulled back with distinct
  cotangents) and "mean", of the chunked loss and of the naive one: one
  compiled program."""
  hidden, weight, bias, labels, where = inputs
  has_bias = options.get("bias", False)
  kwargs = {
    k: v
    for k, v in options.items()
    if k not in ("bias", "where", "logit_soft_cap")
  }
  if options.get("where"):
    kwargs["where"] = where
  if "ignore_index" not in options:
    labels = np.where(labels == IGNORE, 0, labels)
  cotangent = np.arange(1, labels.size + 1, dtype=dtype).reshape(labels.shape)
  cap = dtype(options.get("logit_soft_cap", 1.0))

  def call(loss, reduction):
    return lambda h, w, b, c: loss(
      h,
      w,
      labels,
      bias=b if has_bias else None,
      logit_soft_cap=c if "logit_soft_cap" in options else None,
      reduction=reduction,
      **kwargs,
    )

  def results(loss, args):
    none, pull = jax.vjp(call(loss, "none"), *args)
    mean, d_mean = jax.value_and_grad(call(loss, "mean"), argnums=(0, 1, 2, 3))(
      *args
    )
    values = {"none": none, "sum": call(loss, "sum")(*args), "mean": mean}
    return values, {"none": pull(jnp.asarray(cotangent)), "mean": d_mean}

  def run(*args):
    chunked = functools.partial(js.linear_cross_entropy, chunk_size=chunk_size)
    return results(chunked, args), results(naive_linear_cross_entropy, args)

  return jax.jit(run)(hidden, weight, bias, cap), labels


def _check_against_naive(options, chunk_size, dtype, tol, vocab=V):
  inputs = _lce_inputs(0, dtype, vocab)
  ((values, grads), (want_values, want_grads)), labels = _all_reductions(
    chunk_size, inputs, options, dtype
  )
  for reduction in ("none", "sum", "mean"):
    assert_close(
      values[reduction], want_values[reduction], **tol, what=reduction
    )
  for reduction in ("none", "mean"):
    for arg, got, want in zip(
      ("hidden", "weight", "bias", "cap"),
      grads[reduction],
      want_grads[reduction],
    ):
      assert_close(got, want, **tol, what=f"{reduction} d/d{arg}")
  # Every gradient that should be non-zero is.
  d_hidden, d_weight, d_bias, d_cap = grads["none"]
  assert np.all(np.abs(d_weight) > 0)
  assert (np.abs(d_bias) > 0).all() == bool(options.get("bias"))
  assert (np.abs(d_cap) > 0) == ("logit_soft_cap" in options)
  # The float64 NumPy formula, per token and reduced.
  hidden, weight, bias, _, where = inputs
  keep = labels != IGNORE
  if options.get("where"):
    keep &= where
  expected = numpy_linear_cross_entropy(
    hidden,
    weight,
    labels,
    bias if options.get("bias") else None,
    keep,
    options.get("label_smoothing", 0.0),
    options.get("z_loss", 0.0),
    options.get("logit_soft_cap"),
  )
  assert_close(values["none"], expected, **tol)
  assert_close(values["sum"], expected.sum(), **tol)
  assert_close(values["mean"], expected.sum() / keep.sum(), **tol)
  assert np.all(values["none"][~keep] == 0)


# --------------------------------------------------------------------------- #
# linear_cross_entropy: chunked vs naive


@pytest.mark.parametrize("options", list(OPTIONS), ids=list(OPTIONS))
def test_linear_cross_entropy_float64(x64, options):
  """Chunks of 4 tokens: several chunks and a tail chunk."""
  _check_against_naive(OPTIONS[options], 4, np.float64, F64_TOL)


def test_linear_cross_entropy_float64_one_dense_block(x64):
  """chunk_size=None: one dense block, plain autodiff."""
  _check_against_naive(OPTIONS["all"], None, np.float64, F64_TOL)


def test_linear_cross_entropy_float64_one_chunk(x64):
  """A chunk of at least every token: the engine with one chunk, no loop."""
  _check_against_naive(OPTIONS["all"], 64, np.float64, F64_TOL, vocab=12)


def test_linear_cross_entropy_float32():
  _check_against_naive(OPTIONS["all"], 3, np.float32, F32_TOL)


def _default_chunks(tokens, vocab, chunk_size="auto"):
  """The scans over token chunks that ``chunk_size`` makes: ``[]`` for one
  dense block or one chunk, else ``[tokens // chunk]`` (traced on shapes
  only; dim 1, so the weight is read in one slice)."""
  return scan_lengths(
    js.linear_cross_entropy,
    jax.ShapeDtypeStruct((tokens, 1), jnp.float32),
    jax.ShapeDtypeStruct((1, vocab), jnp.float32),
    jax.ShapeDtypeStruct((tokens,), jnp.int32),
    chunk_size=chunk_size,
  )


def test_linear_cross_entropy_default_chunk_and_flat_tokens(x64):
  """chunk_size=None (one dense block at this vocabulary) and [tokens, dim]
  inputs give the [batch, time] values, flattened."""
  hidden, weight, bias, labels, _ = _lce_inputs(1, np.float64)
  labels = np.where(labels == IGNORE, 0, labels)
  assert _default_chunks(B * T, V) == []
  full = js.linear_cross_entropy(
    hidden, weight, labels, bias=bias, reduction="none"
  )
  flat = js.linear_cross_entropy(
    hidden.reshape(-1, D),
    weight,
    labels.reshape(-1),
    bias=bias,
    chunk_size=4,
    reduction="none",
  )
  assert full.shape == (B, T) and flat.shape == (B * T,)
  assert_close(flat, np.asarray(full).reshape(-1), **F64_TOL)
  assert_close(
    full, numpy_linear_cross_entropy(hidden, weight, labels, bias), **F64_TOL
  )


def test_default_chunk_size_is_auto():
  """chunk_size="auto" (the default): one dense block while tokens × vocab ×
  16 bytes (four float32 copies) fit 16 MiB, else chunks of the largest
  power of two of tokens with vocab × chunk × 16 <= 16 MiB, at least 128
  (the scan runs over tokens / chunk chunks; chunking.auto_chunk_size with
  the vocabulary as rows). Hand-computed from that rule."""
  assert _default_chunks(4096, 32768) == [4096 // 128]  # 32 < 128: floored
  assert _default_chunks(16384, 262144) == [16384 // 128]
  assert _default_chunks(4, 262144) == []  # 4 × 262144 × 16 = 16 MiB
  assert _default_chunks(5, 262144) == []  # a chunk of 128 > 5 tokens
  assert _default_chunks(2**20, 8) == [2**20 // 131072]
  assert _default_chunks(64, 300) == []  # one dense block
  assert _default_chunks(4096, 32768, None) == []  # None: dense
  assert _default_chunks(4096, 32768, 1000) == [4]  # and a static tail
  assert _default_chunks(4096, 32768, 4096) == []  # one chunk, no loop


def test_linear_cross_entropy_masked_everything_is_zero_with_zero_grad():
  hidden, weight, _, labels, _ = _lce_inputs(2, np.float32)
  where = np.zeros((B, T), bool)

  def f(h, w):
    return js.linear_cross_entropy(
      h, w, np.maximum(labels, 0), where=where, chunk_size=4
    )

  value, (d_hidden, d_weight) = jax.value_and_grad(f, argnums=(0, 1))(
    hidden, weight
  )
  assert float(value) == 0.0
  assert not np.any(d_hidden) and not np.any(d_weight)


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_linear_cross_entropy_ignores_minus_100_by_default(x64, chunk_size):
  """Issue 19: a -100 label (torch's and Hugging Face's padding) is dropped
  without passing ignore_index; it used to be scored as lse(z)."""
  hidden, weight, _, labels, _ = _lce_inputs(5, np.float64)
  assert np.sum(labels == IGNORE) == 1
  keep = labels != IGNORE
  expected = numpy_linear_cross_entropy(hidden, weight, labels, keep=keep)
  none = js.linear_cross_entropy(
    hidden, weight, labels, reduction="none", chunk_size=chunk_size
  )
  mean = js.linear_cross_entropy(hidden, weight, labels, chunk_size=chunk_size)
  assert_close(none, expected, **F64_TOL)
  assert float(none[0, 1]) == 0.0
  assert_close(mean, expected.sum() / keep.sum(), **F64_TOL)


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_linear_cross_entropy_out_of_range_labels_are_nan(x64, chunk_size):
  """Issue 19: labels -1 and vocab (and -100 with ignore_index=None) give
  NaN for their token only; masked out by where they are dropped with finite
  gradients."""
  hidden, weight, _, labels, _ = _lce_inputs(6, np.float64)
  labels[0, 1] = 3  # no ignored label
  good = numpy_linear_cross_entropy(hidden, weight, labels)
  bad = labels.copy()
  bad[0, 0], bad[1, 1] = -1, V
  wrong = np.zeros(labels.shape, bool)
  wrong[0, 0] = wrong[1, 1] = True
  lce = functools.partial(js.linear_cross_entropy, chunk_size=chunk_size)
  got = np.asarray(lce(hidden, weight, bad, reduction="none"))
  assert np.all(np.isnan(got[wrong]))
  assert_close(got[~wrong], good[~wrong], **F64_TOL)
  assert np.isnan(float(lce(hidden, weight, bad)))
  unignored = labels.copy()
  unignored[1, 2] = IGNORE
  got = np.asarray(
    lce(hidden, weight, unignored, ignore_index=None, reduction="none")
  )
  assert np.isnan(got[1, 2]) and np.all(np.isfinite(np.delete(got, 5)))

  def masked_mean(h, w):
    return lce(h, w, bad, where=~wrong)

  value, grads = jax.value_and_grad(masked_mean, argnums=(0, 1))(hidden, weight)
  assert_close(value, good[~wrong].mean(), **F64_TOL)
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_linear_cross_entropy_weights_and_mean_over_valid_tokens(x64):
  """weights scale the per-token values; "mean" divides by the weights of the
  valid tokens only (ignore_index and where both count)."""
  hidden, weight, _, labels, where = _lce_inputs(3, np.float64)
  weights = _rng(4).uniform(0.5, 2.0, size=(B, T))
  keep = (labels != IGNORE) & where
  per_token = numpy_linear_cross_entropy(hidden, weight, labels, keep=keep)
  kwargs = dict(where=where, ignore_index=IGNORE, weights=weights, chunk_size=4)
  mean = js.linear_cross_entropy(hidden, weight, labels, **kwargs)
  none = js.linear_cross_entropy(
    hidden, weight, labels, reduction="none", **kwargs
  )
  assert_close(none, weights * per_token, **F64_TOL)
  assert_close(
    mean, np.sum(weights * per_token) / np.sum(weights * keep), **F64_TOL
  )


# --------------------------------------------------------------------------- #
# linear_cross_entropy: memory


def test_linear_cross_entropy_temporary_memory_does_not_scale_with_tokens():
  """Compiled temporary bytes of forward + backward: the naive version holds
  the float32 logits (4 × tokens × vocab bytes); the chunked one (chunks of
  32 tokens, every option on) grows, from 256 to 2,048 tokens, by less than
  1/16 of the logits' growth (what grows is O(tokens) vectors and the
  ``[tokens, dim]`` gradient, dim 8) and stays under 1/8 of the logits (a
  few ``[32, vocab]`` blocks: 1/64 of the logits at 2,048 tokens)."""
  dim, vocab, small, large = 8, 512, 256, 2048

  def naive(h, w, b, y):
    return optax.losses.softmax_cross_entropy_with_integer_labels(
      h @ w + b[None, :], y
    ).mean()

  def chunked(h, w, b, y):
    return js.linear_cross_entropy(
      h,
      w,
      y,
      bias=b,
      chunk_size=32,
      label_smoothing=0.1,
      z_loss=1e-4,
      logit_soft_cap=30.0,
      ignore_index=0,
    )

  logits_bytes = 4 * large * vocab
  growth = 4 * (large - small) * vocab
  assert linear_temp_bytes(naive, large, dim, vocab) >= logits_bytes
  chunked_small = linear_temp_bytes(chunked, small, dim, vocab)
  chunked_large = linear_temp_bytes(chunked, large, dim, vocab)
  assert chunked_large - chunked_small < growth / 16, (
    chunked_small,
    chunked_large,
  )
  assert chunked_large < logits_bytes / 8, chunked_large


# --------------------------------------------------------------------------- #
# linear_cross_entropy: errors


def test_linear_cross_entropy_errors_name_the_loss_and_argument():
  hidden, weight, bias, labels, where = _lce_inputs(5, np.float32)
  labels = np.maximum(labels, 0)
  lce = js.linear_cross_entropy
  cases = [
    (dict(weight=weight[:-1]), ValueError, r"`weight`.*\(5, '\*'\)"),
    (dict(weight=weight[0]), ValueError, r"`weight` must have rank 2"),
    (dict(labels=labels[:, :-1]), ValueError, r"`labels`.*\(2, 3\)"),
    (dict(labels=labels.astype(np.float32)), TypeError, r"`labels`"),
    (dict(hidden=hidden.astype(np.int32)), TypeError, r"`hidden`"),
    (dict(bias=bias[:-1]), ValueError, r"`bias`.*\(11,\)"),
    (dict(where=where[:, :1, None]), ValueError, r"`where`"),
    (dict(where=where.astype(np.int32)), TypeError, r"`where`"),
    (dict(reduction="avg"), ValueError, r"reduction='avg'"),
    (dict(label_smoothing=1.5), ValueError, r"`label_smoothing`"),
    (dict(z_loss=-1.0), ValueError, r"`z_loss`"),
    (dict(logit_soft_cap=0.0), ValueError, r"`logit_soft_cap`"),
    (dict(chunk_size=0), ValueError, r"`chunk_size`"),
    (dict(chunk_size=True), ValueError, r"`chunk_size`"),
    (dict(chunk_size=4.0), ValueError, r"`chunk_size`"),
    (dict(ignore_index=np.array([1, 2])), ValueError, r"`ignore_index`"),
  ]
  for change, error, pattern in cases:
    args = dict(hidden=hidden, weight=weight, labels=labels)
    kwargs = {k: v for k, v in change.items() if k not in args}
    args.update({k: v for k, v in change.items() if k in args})
    with pytest.raises(error, match="linear_cross_entropy.*" + pattern):
      lce(args["hidden"], args["weight"], args["labels"], **kwargs)


# --------------------------------------------------------------------------- #
# CTC: float64 NumPy forward algorithm


def numpy_ctc(logits, logit_paddings, labels, label_paddings, blank=0):
  """Per-sequence CTC negative log-likelihoods: the forward algorithm over
  the extended sequence ``blank, l1, blank, l2, …, blank`` on the unpadded
  frames (wherever they are) and the unpadded labels; ``inf`` when no
  alignment fits.

  ``alpha[s]`` after frame ``t`` sums the paths that end in state ``s``; a
  state is entered from itself, from the previous state, or from two states
  back when it is a label different from the label two states back (a blank
  must separate two equal labels)."""
  losses = []
  for x, frame_pad, y, label_pad in zip(
    np.float64(logits), logit_paddings, labels, label_paddings
  ):
    log_p = x[frame_pad == 0]
    log_p = log_p - _np_lse(log_p)[:, None]
    y = list(y[label_pad == 0])
    ext = np.array([blank] + [v for label in y for v in (label, blank)])
    skip = np.zeros(len(ext), bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    alpha = np.full(len(ext), -np.inf)
    alpha[:2] = log_p[0, ext[:2]]
    for t in range(1, len(log_p)):
      one_back = np.concatenate([[-np.inf], alpha])[: len(ext)]
      two_back = np.where(
        skip, np.concatenate([[-np.inf] * 2, alpha])[: len(ext)], -np.inf
      )
      with np.errstate(invalid="ignore"):  # logaddexp(-inf, -inf) = -inf
        alpha = (
          np.logaddexp(np.logaddexp(alpha, one_back), two_back) + log_p[t, ext]
        )
    losses.append(-np.logaddexp.reduce(alpha[-2:] if y else alpha[-1:]))
  return np.array(losses)


def _ctc_inputs(seed, blank=0, frames=6, classes=5, max_labels=3):
  """Four sequences: a repeated label, a label used twice apart, padded
  frames (at the end and in the middle), padded labels, an empty label
  sequence; padded label entries hold arbitrary classes."""
  rng = _rng(seed)
  logits = 2 * rng.normal(size=(4, frames, classes))
  others = [k for k in range(classes) if k != blank]
  a, b, c = others[:3]
  labels = np.array([[a, a, b], [b, c, b], [c, a, a], [a, b, c]], np.int32)
  lengths = np.array([3, 3, 2, 0])
  label_paddings = np.float64(np.arange(max_labels)[None] >= lengths[:, None])
  logit_paddings = np.zeros((4, frames))
  logit_paddings[1, -2:] = 1.0  # right-padded frames
  logit_paddings[2, 2] = 1.0  # a padded frame in the middle (optax allows it)
  return logits, logit_paddings, labels, label_paddings


def test_ctc_matches_numpy_forward_algorithm(x64):
  """float64 (1e-10) and float32 (1e-5), blank 0 and a non-zero blank."""
  cases = {blank: _ctc_inputs(0, blank) for blank in (0, 4)}

  @jax.jit
  def run(cases):
    out = {}
    for blank, (
      logits,
      logit_paddings,
      labels,
      label_paddings,
    ) in cases.items():
      out[blank] = [
        js.ctc_loss(
          logits.astype(dtype),
          logit_paddings.astype(dtype),
          labels,
          label_paddings.astype(dtype),
          blank_id=blank,
        )
        for dtype in (jnp.float64, jnp.float32)
      ]
    return out

  for blank, (got64, got32) in run(cases).items():
    expected = numpy_ctc(*cases[blank], blank)
    assert np.all(np.isfinite(expected))
    assert got64.dtype == jnp.float64 and got32.dtype == jnp.float32
    assert_close(got64, expected, rtol=1e-10, atol=1e-10)
    assert_close(got32, expected, rtol=1e-5, atol=1e-5)


def test_ctc_small_cases_by_hand(x64):
  """Uniform logits over K classes and T frames: the loss is
  ``T·log K − log(#alignments)``."""
  K, frames = 3, 3
  logits = np.zeros((4, frames, K))
  labels = np.array([[1, 2], [1, 1], [1, 0], [0, 0]], np.int32)
  label_paddings = np.array([[0, 0], [0, 0], [0, 1], [1, 1]], np.float64)
  # "1 2" in 3 frames: 1 1 2, 1 2 2, 1 2 _, 1 _ 2, _ 1 2 (5 alignments);
  # "1 1": only 1 _ 1; "1": 1 1 1, 1 1 _, 1 _ _, _ 1 1, _ _ 1, _ 1 _
  # (6); "": _ _ _ (1).
  counts = np.array([5, 1, 6, 1])
  got = js.ctc_loss(logits, np.zeros((4, frames)), labels, label_paddings)
  assert_close(got, frames * np.log(K) - np.log(counts), rtol=1e-12, atol=0)


def test_ctc_gradient_matches_numerical_gradient_of_numpy_reference(x64):
  """Central differences of the NumPy reference (blank 2, a repeat, an empty
  target, padded frames); the gradient is 0 on padded frames. An infeasible
  target ("1 1" in two frames: a blank must separate the repeats) has a
  large finite value, of order -log_epsilon, where the exact one is inf, and
  a finite gradient."""
  logits, logit_paddings, _, _ = _ctc_inputs(
    1, blank=2, frames=4, classes=4, max_labels=2
  )
  labels = np.array([[0, 0], [1, 3], [3, 1], [0, 1]], np.int32)
  label_paddings = np.array([[0, 0], [0, 1], [0, 0], [1, 1]], np.float64)
  infeasible = (
    logits[:1, :2],
    np.zeros((1, 2)),
    np.array([[1, 1]]),
    np.zeros((1, 2)),
  )

  @jax.jit
  def run(x, y):
    total = lambda x, *a: js.ctc_loss(x, *a, blank_id=2, reduction="sum")
    return (
      jax.grad(total)(x, logit_paddings, labels, label_paddings),
      jax.value_and_grad(total)(y, *infeasible[1:]),
    )

  grad, (large, grad_infeasible) = run(logits, infeasible[0])
  assert np.all(np.isfinite(grad))
  step, numerical = 1e-6, np.zeros_like(logits)
  for index in np.ndindex(*logits.shape):
    up, down = logits.copy(), logits.copy()
    up[index] += step
    down[index] -= step
    numerical[index] = (
      numpy_ctc(up, logit_paddings, labels, label_paddings, 2).sum()
      - numpy_ctc(down, logit_paddings, labels, label_paddings, 2).sum()
    ) / (2 * step)
  assert_close(grad, numerical, rtol=1e-6, atol=1e-7)
  assert not np.any(grad[logit_paddings == 1])
  assert numpy_ctc(*infeasible, 2) == np.inf
  assert np.isfinite(large) and large > 1e4
  assert np.all(np.isfinite(grad_infeasible))


def test_ctc_equals_optax_and_forward_probs(x64):
  """ctc_loss and ctc_loss_with_forward_probs equal optax's (float32 and
  float64, blank 1, a traced log_epsilon); the loss is minus the last frame's
  blank-state alpha after the labels; where/reduction apply to the loss
  only."""
  logits, logit_paddings, labels, label_paddings = _ctc_inputs(2, blank=1)
  where = np.array([True, False, True, True])

  @jax.jit
  def run(logits, log_epsilon):
    out = {}
    for dtype in ("float32", "float64"):
      args = (
        logits.astype(dtype),
        logit_paddings.astype(dtype),
        labels,
        label_paddings.astype(dtype),
      )
      kwargs = dict(blank_id=1, log_epsilon=log_epsilon)
      out[dtype] = dict(
        ours=js.ctc_loss(*args, **kwargs),
        probs=js.ctc_loss_with_forward_probs(*args, **kwargs),
        mean=js.ctc_loss_with_forward_probs(
          *args, **kwargs, where=where, reduction="mean"
        ),
        optax=optax.losses.ctc_loss(*args, **kwargs),
        optax_probs=optax.losses.ctc_loss_with_forward_probs(*args, **kwargs),
      )
    return out

  lengths = (label_paddings == 0).sum(1)
  for dtype, out in run(logits, -1e4).items():
    np.testing.assert_array_equal(
      out["ours"], np.asarray(out["optax"]).astype(dtype)
    )
    for a, b in zip(out["probs"], out["optax_probs"]):
      assert a.dtype == dtype
      np.testing.assert_array_equal(a, np.asarray(b).astype(dtype))
    loss, blank, label = out["probs"]
    assert blank.shape == (6, 4, 4) and label.shape == (6, 4, 3)
    np.testing.assert_array_equal(loss, out["ours"])
    assert_close(loss, -blank[-1, np.arange(4), lengths], rtol=1e-6, atol=0)
    mean, blank_where, label_where = out["mean"]
    assert_close(mean, np.mean(np.asarray(loss)[where]), rtol=1e-6, atol=0)
    np.testing.assert_array_equal(blank_where, blank)
    np.testing.assert_array_equal(label_where, label)


def test_ctc_reduction_where_weights_contract(x64):
  logits, logit_paddings, labels, label_paddings = _ctc_inputs(4)
  per_sequence = numpy_ctc(logits, logit_paddings, labels, label_paddings)
  where = np.array([True, True, False, True])
  weights = np.array([0.5, 2.0, 3.0, 1.0])
  lengths = np.maximum((label_paddings == 0).sum(1), 1)

  @jax.jit
  def run(logits):
    loss = functools.partial(
      js.ctc_loss, logits, logit_paddings, labels, label_paddings
    )
    return dict(
      sum=loss(reduction="sum"),
      mean=loss(reduction="mean"),
      none=loss(where=where, weights=weights),
      weighted_mean=loss(where=where, weights=weights, reduction="mean"),
      torch_mean=loss(weights=1 / lengths, reduction="batchmean"),
    )

  out, tol = run(logits), dict(rtol=1e-10, atol=0)
  assert_close(out["sum"], per_sequence.sum(), **tol)
  assert_close(out["mean"], per_sequence.mean(), **tol)
  assert_close(out["none"], np.where(where, weights * per_sequence, 0), **tol)
  assert_close(
    out["weighted_mean"],
    np.sum((weights * per_sequence)[where]) / np.sum(weights[where]),
    **tol,
  )
  # torch's reduction="mean": each sequence divided by its target length.
  assert_close(out["torch_mean"], np.mean(per_sequence / lengths), **tol)


def test_ctc_invalid_labels_are_nan_padded_ones_are_not(x64):
  """Issue 19: an unpadded label -1, num_classes or the blank gives NaN for
  its sequence (optax's one-hot scored it as probability 1); the same labels
  in padded positions, or in a sequence masked out by where, change
  nothing."""
  logits, logit_paddings, labels, label_paddings = _ctc_inputs(7)
  good = numpy_ctc(logits, logit_paddings, labels, label_paddings)
  bad = labels.copy()
  bad[0, 1], bad[1, 0], bad[2, 1] = -1, 5, 0  # -1, num_classes, the blank
  bad[2, 2] = bad[3, 0] = -1  # padded positions: ignored
  got = np.asarray(js.ctc_loss(logits, logit_paddings, bad, label_paddings))
  assert np.all(np.isnan(got[:3]))
  assert_close(got[3], good[3], **F64_TOL)
  padded_only = labels.copy()
  padded_only[2, 2] = padded_only[3] = -7
  assert_close(
    js.ctc_loss(logits, logit_paddings, padded_only, label_paddings),
    good,
    **F64_TOL,
  )
  where = np.array([False, False, False, True])

  def masked(x):
    return js.ctc_loss(
      x, logit_paddings, bad, label_paddings, where=where, reduction="sum"
    )

  value, grad = jax.value_and_grad(masked)(logits)
  assert_close(value, good[3], **F64_TOL)
  assert np.all(np.isfinite(grad))


def test_ctc_errors_name_the_loss_and_argument():
  logits, logit_paddings, labels, label_paddings = _ctc_inputs(6)
  args = (
    np.float32(logits),
    np.float32(logit_paddings),
    labels,
    np.float32(label_paddings),
  )
  with pytest.raises(
    ValueError,
    match=r"ctc_loss: argument `logits` must "
    "have rank 3",
  ):
    js.ctc_loss(args[0][0], *args[1:])
  with pytest.raises(ValueError, match=r"ctc_loss: argument `logit_paddings`"):
    js.ctc_loss(args[0], args[1][:, :-1], *args[2:])
  with pytest.raises(ValueError, match=r"ctc_loss: argument `label_paddings`"):
    js.ctc_loss(*args[:3], args[3][:, :-1])
  with pytest.raises(ValueError, match=r"ctc_loss: argument `labels`"):
    js.ctc_loss(*args[:2], labels[:-1], args[3])
  with pytest.raises(TypeError, match=r"ctc_loss: argument `labels`"):
    js.ctc_loss(*args[:2], np.float32(labels), args[3])
  for blank in (5, -1, 1.0, True):
    with pytest.raises(ValueError, match=r"ctc_loss: `blank_id`"):
      js.ctc_loss(*args, blank_id=blank)
  with pytest.raises(
    ValueError,
    match=r"ctc_loss_with_forward_probs: unknown "
    "reduction",
  ):
    js.ctc_loss_with_forward_probs(*args, reduction="avg")
