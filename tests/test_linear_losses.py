"""Value tests of the one-device linear-layer losses (issue 20):
``linear_cross_entropy``'s class weights, gradient filtering and bfloat16
weight, and ``linear_log_probs``.

References (float64, on the materialised logits):

* class weights with label smoothing: a NumPy transcription of torch's
  aten ``cross_entropy`` (aten/src/ATen/native/LossNLL.cpp,
  ``cross_entropy_loss_label_smoothing``, torch 2.13): per token
  ``(1 − ε)·w_y·(−log p_y) + (ε/V)·Σ_v w_v·(−log p_v)``, ``"mean"`` divided
  by ``Σ w_y`` over the counted tokens (``nll_loss``'s weighted mean); the
  same transcription in ``jax.numpy`` gives the reference gradients
  (autodiff of the materialised logits);
* log-probabilities and entropy: ``log_softmax(z)[label]`` and
  ``−Σ softmax(z)·log_softmax(z)`` of ``z = c·tanh((h W + b)/c) / T``,
  written with NumPy here, and ``jax.nn.log_softmax`` for the gradients.

The problems have ``dim = 4,096`` and 300 classes so that the weight is read
in three slices (256, 256 and a tail of 88 columns: ``slice_size`` is 256 at
this ``dim``), and 10 tokens in chunks of 4 (two chunks and a tail). The
engine itself is tested in tests/test_core_linear_softmax.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss.testing import assert_close
from tests.assertions import linear_temp_bytes

F64_TOL = dict(rtol=1e-10, atol=1e-10)
IGNORE = -100
B, T, D, V = 2, 5, 4096, 600
# The weight's slices: 4096 × 256 × 4 B = 4 MiB (linear_softmax.slice_size,
# asserted in tests/test_core_linear_softmax.py).
SLICE = 256
CHUNK = 4


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def test_the_problem_has_several_slices_and_chunks():
  assert divmod(V, SLICE) == (2, 88)
  assert divmod(B * T, CHUNK) == (2, 2)


def _inputs(seed=0, dtype=np.float64):
  rng = np.random.default_rng(seed)
  hidden = rng.normal(size=(B, T, D)).astype(dtype)
  weight = (rng.normal(size=(D, V)) / np.sqrt(D) * 2).astype(dtype)
  bias = (0.5 * rng.normal(size=V)).astype(dtype)
  class_weights = rng.uniform(0.2, 3.0, size=V).astype(dtype)
  labels = rng.integers(0, V, size=(B, T)).astype(np.int32)
  labels[0, 1] = IGNORE
  labels[1, 4] = V - 1  # in the tail slice and the tail chunk
  labels[1, 3] = SLICE + 30  # in the second slice
  where = np.ones((B, T), bool)
  where[1, 0] = False
  weights = rng.uniform(0.5, 2.0, size=(B, T)).astype(dtype)
  return hidden, weight, bias, class_weights, labels, where, weights


# --------------------------------------------------------------------------- #
# linear_cross_entropy: class weights (torch's rule)


def torch_weighted_smoothed_ce(
  xp, hidden, weight, bias, cap, labels, class_weights, epsilon, keep
):
  """Per-token values of aten's ``cross_entropy_loss_label_smoothing`` with
  ``weight``, on the materialised (soft-capped) logits, ``xp`` NumPy or
  jax.numpy; tokens not in ``keep`` are 0 (aten: ``masked_fill_(ignore_mask,
  0)`` and ``nll_loss``'s ``ignore_index``)."""
  z = hidden @ weight + bias.reshape(1, 1, -1)
  if cap is not None:
    z = cap * xp.tanh(z / cap)
  peak = xp.max(z, axis=-1, keepdims=True)
  log_p = z - (peak + xp.log(xp.sum(xp.exp(z - peak), axis=-1, keepdims=True)))
  safe = xp.where(keep, labels, 0)
  nll = -xp.take_along_axis(log_p, safe[..., None], axis=-1)[..., 0]
  w_y = class_weights[safe]
  values = w_y * nll
  if epsilon:  # (with −inf logits the smoothing term is NaN, as in torch)
    smooth = -xp.sum(log_p * class_weights.reshape(1, 1, -1), axis=-1)
    values = (1 - epsilon) * values + epsilon / z.shape[-1] * smooth
  return xp.where(keep, values, 0), xp.where(keep, w_y, 0)


def _reduce(values, w_y, weights, reduction):
  """jaxloss's reductions of torch's values: ``"mean"`` is torch's weighted
  mean ``Σ weights·ℓ / Σ weights·w_y`` (``weights`` = 1 is torch's)."""
  if reduction == "none":
    return weights * values
  total = (weights * values).sum()
  return total if reduction == "sum" else total / (weights * w_y).sum()


CLASS_OPTIONS = {
  "plain": dict(),
  "smoothing": dict(label_smoothing=0.2),
  "all": dict(label_smoothing=0.1, where=True, weights=True, cap=2.5),
}


REDUCTIONS = ("none", "sum", "mean")


@pytest.mark.parametrize("chunk_size", [None, CHUNK], ids=["dense", "chunk"])
@pytest.mark.parametrize("options", list(CLASS_OPTIONS))
def test_class_weights_match_torch_rule(x64, options, chunk_size):
  """Values and the gradients of hidden, weight, bias, class weights and a
  traced soft cap, to 1e-10, for every reduction: the dense path, the
  chunked scalar path (token_sum: "sum", "mean") and the chunked "none" path
  (token_values), over 3 weight slices and 3 token chunks (one compiled
  program for the three reductions)."""
  options = CLASS_OPTIONS[options]
  hidden, weight, bias, class_weights, labels, where, weights = _inputs(1)
  epsilon = options.get("label_smoothing", 0.0)
  keep = labels != IGNORE
  if options.get("where"):
    keep = keep & where
  token_weights = weights if options.get("weights") else np.ones((B, T))
  has_cap = "cap" in options
  cap = np.float64(options.get("cap", 1.0))
  cotangent = np.arange(1.0, B * T + 1).reshape(B, T) / (B * T)

  def loss(reduction, h, w, b, cw, c):
    return jaxloss.linear_cross_entropy(
      h,
      w,
      labels,
      bias=b,
      class_weights=cw,
      logit_soft_cap=c if has_cap else None,
      label_smoothing=epsilon,
      where=where if options.get("where") else None,
      weights=weights if options.get("weights") else None,
      chunk_size=chunk_size,
      reduction=reduction,
    )

  def reference(reduction, h, w, b, cw, c):
    values, w_y = torch_weighted_smoothed_ce(
      jnp, h, w, b, c if has_cap else None, labels, cw, epsilon, keep
    )
    return _reduce(values, w_y, token_weights, reduction)

  @jax.jit
  def run(*args):
    out = []
    for reduction in REDUCTIONS:
      pair = []
      for f in (loss, reference):
        value, pull = jax.vjp(functools.partial(f, reduction), *args)
        pair.append((value, pull(cotangent if reduction == "none" else 1.0)))
      out.append(pair)
    return out

  results = run(hidden, weight, bias, class_weights, cap)
  values, w_y = torch_weighted_smoothed_ce(
    np, hidden, weight, bias, cap if has_cap else None, labels,
    class_weights, epsilon, keep,
  )  # fmt: skip
  for reduction, ((got, got_grads), (want, want_grads)) in zip(
    REDUCTIONS, results, strict=True
  ):
    assert_close(
      want,
      _reduce(values, w_y, token_weights, reduction),
      **F64_TOL,
      what=reduction,
    )
    assert_close(got, want, **F64_TOL, what=reduction)
    names = ("hidden", "weight", "bias", "class_weights", "cap")
    for name, g, w in zip(names, got_grads, want_grads, strict=True):
      assert_close(g, w, **F64_TOL, what=f"{reduction}: d/d{name}")
    assert np.any(np.asarray(got_grads[3]) != 0), reduction
    assert (float(got_grads[4]) != 0) == has_cap, reduction


def test_class_weights_mean_is_torch_weighted_mean(x64):
  """A hand-computed case: two tokens of classes 0 and 1 with weights 1
  and 3 and no smoothing: the mean is (1·ℓ_0 + 3·ℓ_1) / 4, not / 2."""
  hidden = np.array([[1.0, 0.0], [0.0, 1.0]])
  weight = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  labels = np.array([0, 1])
  z = hidden @ weight
  nll = np.log(np.exp(z).sum(1)) - z[[0, 1], [0, 1]]
  got = jaxloss.linear_cross_entropy(
    hidden, weight, labels, class_weights=np.array([1.0, 3.0, 5.0])
  )
  assert_close(got, (nll[0] + 3 * nll[1]) / 4, **F64_TOL)


# --------------------------------------------------------------------------- #
# filter_eps


def _peaked(seed=2):
  """A trained-model-like softmax: per token a few logits near 12 (columns
  0..7), the rest about N(0, 1): probabilities below 1e-4 outside."""
  rng = np.random.default_rng(seed)
  hidden = rng.normal(size=(B, T, D)) / np.sqrt(D)
  weight = rng.normal(size=(D, V))
  hidden[..., 0] = 1.0
  weight[0] = 0.0
  weight[0, :8] = 12.0
  labels = rng.integers(0, 8, size=(B, T)).astype(np.int32)
  return hidden, weight, labels


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_filter_eps_on_a_peaked_softmax(x64, reduction):
  """filter_eps=None is exact (the default); with filter_eps=1e-4 the
  value is unchanged and every gradient entry is within the documented
  bound of the exact one (a dropped entry of the logits' gradient is p <
  filter_eps times the token's coefficient), and some are not exact (the
  slices of columns 256.. are skipped)."""
  hidden, weight, labels = _peaked()
  z = (hidden @ weight).reshape(-1, V)
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  assert p[:, 8:].max() < 1e-4
  coef = 1 / (B * T) if reduction == "mean" else 1.0

  def run(filter_eps, chunk_size):
    def f(h, w):
      return jnp.sum(
        jaxloss.linear_cross_entropy(
          h,
          w,
          labels,
          filter_eps=filter_eps,
          chunk_size=chunk_size,
          reduction=reduction,
        )
      )

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(hidden, weight)

  dense, dense_grads = run(None, None)
  exact, exact_grads = run(None, CHUNK)
  value, grads = run(1e-4, CHUNK)
  assert_close(exact, dense, **F64_TOL)
  for g, w in zip(exact_grads, dense_grads):
    assert_close(g, w, **F64_TOL)
  assert_close(value, exact, **F64_TOL)
  d_hidden, d_weight = (np.asarray(g) for g in grads)
  # Skipped: columns 256.. of every chunk (no label there, p < 1e-4).
  assert np.all(d_weight[:, SLICE:] == 0)
  assert np.all(np.asarray(exact_grads[1])[:, SLICE:] != 0)
  assert_close(d_weight[:, :SLICE], exact_grads[1][:, :SLICE], **F64_TOL)
  # |Δ dhidden_n| ≤ coef · Σ_{v ≥ 256} p_nv |W_v|.
  bound = coef * p[:, SLICE:] @ np.abs(weight[:, SLICE:]).T
  change = np.abs(d_hidden - np.asarray(exact_grads[0])).reshape(-1, D)
  assert np.all(change <= bound + 1e-14)
  assert np.max(change) > 0


def test_filter_eps_is_checked():
  hidden, weight, labels = _peaked()
  for bad in (0.0, 1.0, -1e-3, jnp.float32(1e-3)):
    with pytest.raises(ValueError, match="linear_cross_entropy.*`filter_eps`"):
      jaxloss.linear_cross_entropy(
        hidden, weight, labels, filter_eps=bad, chunk_size=CHUNK
      )


# --------------------------------------------------------------------------- #
# bfloat16 weight


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_bfloat16_weight_has_no_float32_copy_in_the_forward(reduction):
  """The compiled forward pass of a bfloat16 ``[1024, 8192]`` weight (read
  in ``[1024, 1024]`` slices, 256 tokens in chunks of 128) takes less
  temporary memory than a float32 copy of the weight (32 MiB): the
  ``[128, 8192]`` float32 blocks of logits and one upcast slice, 9 MiB.
  XLA used to hoist the upcast of the whole weight out of the loop over
  slices (41 MiB); the value equals that of the weight upcast to float32
  (float32 rounding: the same products in another order)."""
  dim, vocab, tokens = 1024, 8192, 256
  rng = np.random.default_rng(3)
  hidden = jnp.asarray(rng.normal(size=(tokens, dim)), jnp.float32)
  weight = jnp.asarray(rng.normal(size=(dim, vocab)) / 32, jnp.bfloat16)
  labels = jnp.asarray(rng.integers(0, vocab, size=tokens), jnp.int32)

  def f(h, w):
    return jnp.sum(
      jaxloss.linear_cross_entropy(
        h, w, labels, chunk_size=128, reduction=reduction
      )
    )

  compiled = jax.jit(f).lower(hidden, weight).compile()
  temp = compiled.memory_analysis().temp_size_in_bytes
  copy = dim * vocab * 4
  assert temp < copy / 2, temp
  got = f(hidden, weight)
  want = f(hidden, weight.astype(jnp.float32))
  assert_close(got, want, rtol=1e-6, atol=0)


def test_bfloat16_weight_gradients_match_float32():
  """Forward + backward with a bfloat16 weight: the hidden states'
  gradient equals the float32 upcast's (float32 rounding), the weight's is
  bfloat16, the float32 one rounded (to one bfloat16 spacing: the float32
  sums differ in their last bits)."""
  rng = np.random.default_rng(4)
  hidden = jnp.asarray(rng.normal(size=(B * T, 64)), jnp.float32)
  weight = jnp.asarray(rng.normal(size=(64, V)) / 8, jnp.bfloat16)
  labels = jnp.asarray(rng.integers(0, V, size=B * T), jnp.int32)
  for chunk_size, reduction in (
    (CHUNK, "mean"),
    (CHUNK, "none"),
    (None, "mean"),
  ):

    def f(h, w):
      return jnp.sum(
        jaxloss.linear_cross_entropy(
          h, w, labels, chunk_size=chunk_size, reduction=reduction
        )
      )

    step = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
    got, (gh, gw) = step(hidden, weight)
    want, (wh, ww) = step(hidden, weight.astype(jnp.float32))
    assert gw.dtype == jnp.bfloat16 and gh.dtype == jnp.float32
    assert_close(got, want, rtol=1e-6, atol=0)
    assert_close(gh, wh, rtol=1e-5, atol=1e-6)
    assert_close(gw, ww, rtol=2**-7, atol=1e-6)


# --------------------------------------------------------------------------- #
# linear_log_probs


def numpy_log_probs(hidden, weight, labels, bias, temperature, cap):
  """Float64 ``(log_softmax(z)[label], −Σ p log p)``, ``z = cap·tanh((h W +
  b)/cap) / T``; classes with ``z = −inf`` have no mass."""
  z = np.float64(hidden) @ np.float64(weight)
  if bias is not None:
    z = z + bias.reshape((1,) * (z.ndim - 1) + (-1,))
  if cap is not None:
    z = cap * np.tanh(z / cap)
  z = z / temperature
  peak = np.max(z, axis=-1, keepdims=True)
  log_p = z - peak - np.log(np.sum(np.exp(z - peak), axis=-1, keepdims=True))
  picked = np.take_along_axis(log_p, labels[..., None], -1)[..., 0]
  p = np.exp(log_p)
  entropy = -np.sum(p * np.where(p > 0, log_p, 0), axis=-1)
  return picked, entropy


def jax_log_probs(hidden, weight, labels, bias, temperature, cap):
  """The same through ``jax.nn.log_softmax`` (for the gradients)."""
  z = hidden @ weight
  if bias is not None:
    z = z + bias.reshape((1,) * (z.ndim - 1) + (-1,))
  if cap is not None:
    z = cap * jnp.tanh(z / cap)
  log_p = jax.nn.log_softmax(z / temperature)
  picked = jnp.take_along_axis(log_p, labels[..., None], -1)[..., 0]
  return picked, -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


LOG_PROB_OPTIONS = {
  "plain": dict(),
  "temperature": dict(temperature=0.6),
  "bias,cap,temperature": dict(bias=True, cap=3.0, temperature=1.3),
}


@pytest.mark.parametrize("chunk_size", [None, CHUNK], ids=["dense", "chunk"])
@pytest.mark.parametrize("options", list(LOG_PROB_OPTIONS))
def test_linear_log_probs_and_entropy(x64, options, chunk_size):
  """log p(label) and the entropy equal the float64 references, and their
  gradients (distinct cotangents for each) with respect to hidden, weight,
  bias and a traced temperature and soft cap equal those of the
  materialised logits, to 1e-10; without return_entropy the log-probs are
  the same."""
  options = LOG_PROB_OPTIONS[options]
  hidden, weight, bias, _, labels, _, _ = _inputs(5)
  labels = np.where(labels == IGNORE, 0, labels)
  has_bias, has_cap = options.get("bias", False), "cap" in options
  temperature = np.float64(options.get("temperature", 1.0))
  cap = np.float64(options.get("cap", 1.0))
  rng = np.random.default_rng(6)
  cotangents = (rng.normal(size=(B, T)), rng.normal(size=(B, T)))

  def args_of(b, c):
    return b if has_bias else None, c if has_cap else None

  def ours(h, w, b, t, c):
    b, c = args_of(b, c)
    return jaxloss.linear_log_probs(
      h,
      w,
      labels,
      bias=b,
      temperature=t,
      logit_soft_cap=c,
      return_entropy=True,
      chunk_size=chunk_size,
    )

  def reference(h, w, b, t, c):
    return jax_log_probs(h, w, labels, *args_of(b, c)[:1], t, args_of(b, c)[1])

  @jax.jit
  def run(*args):
    out = []
    for f in (ours, reference):
      value, pull = jax.vjp(f, *args)
      out.append((value, pull(cotangents)))
    only = jaxloss.linear_log_probs(
      args[0],
      args[1],
      labels,
      bias=args_of(args[2], None)[0],
      temperature=args[3],
      logit_soft_cap=args_of(None, args[4])[1],
      chunk_size=chunk_size,
    )
    return out, only

  ((got, got_grads), (want, want_grads)), only = run(
    hidden, weight, bias, temperature, cap
  )
  log_p, entropy = numpy_log_probs(
    hidden, weight, labels, *args_of(bias, None)[:1], temperature,
    args_of(None, cap)[1],
  )  # fmt: skip
  assert got[0].shape == got[1].shape == labels.shape
  assert_close(want[0], log_p, **F64_TOL)
  assert_close(want[1], entropy, **F64_TOL)
  assert_close(got[0], log_p, **F64_TOL, what="log p")
  assert_close(got[1], entropy, **F64_TOL, what="entropy")
  assert_close(only, log_p, **F64_TOL)
  names = ("hidden", "weight", "bias", "temperature", "cap")
  for name, g, w in zip(names, got_grads, want_grads, strict=True):
    assert_close(g, w, **F64_TOL, what=f"d/d{name}")
  assert float(got_grads[3]) != 0
  assert np.any(np.asarray(got_grads[2]) != 0) == has_bias
  assert (float(got_grads[4]) != 0) == has_cap


def test_linear_log_probs_equals_optax_cross_entropy(x64):
  """−log p(label) is optax's integer-label cross-entropy of the logits
  ``h W / T`` (an independent implementation)."""
  hidden, weight, _, _, labels, _, _ = _inputs(7)
  labels = np.where(labels == IGNORE, 3, labels)
  got = jaxloss.linear_log_probs(
    hidden, weight, labels, temperature=0.8, chunk_size=CHUNK
  )
  want = optax.losses.softmax_cross_entropy_with_integer_labels(
    hidden @ weight / 0.8, labels
  )
  assert_close(-got, want, **F64_TOL)


def test_linear_log_probs_out_of_range_labels_are_nan_and_checked(x64):
  hidden, weight, _, _, labels, _, _ = _inputs(8)
  labels = np.where(labels == IGNORE, 3, labels)
  bad = labels.copy()
  bad[0, 0], bad[1, 2] = -1, V
  wrong = np.zeros(labels.shape, bool)
  wrong[0, 0] = wrong[1, 2] = True

  @jax.jit  # one program: the good labels' values and both paths' bad ones
  def run(hidden, weight, labels, bad):
    def log_probs(labels, chunk_size):
      return jaxloss.linear_log_probs(
        hidden, weight, labels, return_entropy=True, chunk_size=chunk_size
      )

    return log_probs(labels, CHUNK), [log_probs(bad, c) for c in (None, CHUNK)]

  (good, good_h), bad_results = run(hidden, weight, labels, bad)
  for got, got_h in bad_results:
    got = np.asarray(got)
    assert np.all(np.isnan(got[wrong]))
    assert_close(got[~wrong], np.asarray(good)[~wrong], **F64_TOL)
    # The entropy does not read the label: every token has its own.
    assert_close(got_h, good_h, **F64_TOL)
  with pytest.raises(
    checkify.JaxRuntimeError,
    match=r"linear_log_probs: argument `labels` must hold class indices "
    r"in \[0, 600\); found -1 at index \(0, 0\), 2 out of range",
  ):
    jaxloss.checked(jaxloss.linear_log_probs)(hidden, weight, bad)
  jaxloss.checked(jaxloss.linear_log_probs)(hidden, weight, labels)


def test_linear_log_probs_errors_name_the_loss_and_argument():
  hidden, weight, bias, _, labels, _, _ = _inputs(9, np.float32)
  labels = np.maximum(labels, 0)
  cases = [
    (dict(weight=weight[:-1]), ValueError, r"`weight`"),
    (dict(labels=labels[:, :-1]), ValueError, r"`labels`"),
    (dict(hidden=hidden.astype(np.int32)), TypeError, r"`hidden`"),
    (dict(bias=bias[:-1]), ValueError, r"`bias`"),
    (dict(temperature=0.0), ValueError, r"`temperature`"),
    (dict(logit_soft_cap=-1.0), ValueError, r"`logit_soft_cap`"),
    (dict(return_entropy=1), ValueError, r"`return_entropy`"),
    (dict(chunk_size=0), ValueError, r"`chunk_size`"),
  ]
  for change, error, pattern in cases:
    args = dict(hidden=hidden, weight=weight, labels=labels)
    kwargs = {k: v for k, v in change.items() if k not in args}
    args.update({k: v for k, v in change.items() if k in args})
    with pytest.raises(error, match="linear_log_probs.*" + pattern):
      jaxloss.linear_log_probs(
        args["hidden"], args["weight"], args["labels"], **kwargs
      )


def test_linear_log_probs_temporary_memory():
  """The issue's bar at N=4,096, D=512, V=32,768 (compiled, not run):
  jit(grad of Σ (log p + entropy)) of linear_log_probs ("auto": chunks of
  128 tokens) takes at most 1/16 of the temporary memory of the same on the
  materialised logits (which hold several float32 [4096, 32768] arrays,
  512 MiB each)."""
  tokens, dim, vocab = 4096, 512, 32768

  def materialised(h, w, b, y):
    log_p, entropy = jax_log_probs(h, w, y, b, 0.7, None)
    return jnp.sum(log_p + entropy)

  def chunked(h, w, b, y):
    log_p, entropy = jaxloss.linear_log_probs(
      h, w, y, bias=b, temperature=0.7, return_entropy=True
    )
    return jnp.sum(log_p + entropy)

  naive = linear_temp_bytes(
    materialised, tokens, dim, vocab, transform=jax.grad
  )
  ours = linear_temp_bytes(chunked, tokens, dim, vocab, transform=jax.grad)
  assert naive >= 4 * tokens * vocab
  assert ours * 16 <= naive, (ours, naive)


# --------------------------------------------------------------------------- #
# edge cases


@pytest.mark.parametrize("chunk_size", [None, CHUNK], ids=["dense", "chunk"])
def test_huge_logits_and_masked_vocabulary(x64, chunk_size):
  """A row with one logit of +1e4 (the rest O(1)), a row with one of −1e4,
  and −inf bias entries (a masked vocabulary: those classes get no mass):
  linear_cross_entropy (with class weights) and linear_log_probs equal the
  references and have finite gradients."""
  hidden, weight, bias, class_weights, labels, _, _ = _inputs(10)
  labels = np.where(labels == IGNORE, 0, labels)
  hidden[0, 0, 0] = 1e4 / weight[0, labels[0, 0]]  # +1e4 on its own label
  hidden[0, 2, 0] = -1e4 / weight[0, 5]  # −1e4 on class 5
  masked = np.zeros(V, bool)
  masked[[2, 17, SLICE + 5, V - 1]] = True
  labels = np.where(np.isin(labels, np.flatnonzero(masked)), 1, labels)
  bias = np.where(masked, -np.inf, bias)
  keep = np.ones((B, T), bool)

  def ce(h, w, b):
    return jaxloss.linear_cross_entropy(
      h, w, labels, bias=b, class_weights=class_weights,
      chunk_size=chunk_size, reduction="none",
    )  # fmt: skip

  def lp(h, w, b):
    return jaxloss.linear_log_probs(
      h, w, labels, bias=b, return_entropy=True, chunk_size=chunk_size
    )

  @jax.jit  # one program for both losses, values and gradients
  def run(*args):
    ones = jnp.ones((B, T), args[0].dtype)
    values, pull = jax.vjp(ce, *args)
    log_probs, pull_lp = jax.vjp(lp, *args)
    return values, pull(ones), log_probs, pull_lp((ones, ones))

  values, grads, (log_p, entropy), lp_grads = run(hidden, weight, bias)
  want, _ = torch_weighted_smoothed_ce(
    np, hidden, weight, bias, None, labels, class_weights, 0.0, keep
  )
  assert_close(values, want, rtol=1e-10, atol=1e-8)
  for g in grads:
    assert np.all(np.isfinite(np.asarray(g)))
  assert np.all(np.asarray(grads[2])[masked] == 0)
  want_log_p, want_entropy = numpy_log_probs(
    hidden, weight, labels, bias, 1.0, None
  )
  assert_close(log_p, want_log_p, rtol=1e-10, atol=1e-8)
  assert_close(entropy, want_entropy, rtol=1e-10, atol=1e-8)
  for g in lp_grads:
    assert np.all(np.isfinite(np.asarray(g)))
  assert np.all(np.asarray(grads[2])[masked] == 0)


def test_empty_batch():
  """No tokens: [0]-shaped log-probs and entropy, a 0 loss, finite zero
  gradients (dense, "auto" and chunked)."""
  hidden = np.zeros((0, 8), np.float32)
  weight = np.ones((8, 5), np.float32)
  labels = np.zeros((0,), np.int32)
  for chunk_size in (None, "auto", CHUNK):

    def f(h, w, chunk_size=chunk_size):
      log_p, entropy = jaxloss.linear_log_probs(
        h, w, labels, return_entropy=True, chunk_size=chunk_size
      )
      ce = jaxloss.linear_cross_entropy(h, w, labels, chunk_size=chunk_size)
      return jnp.sum(log_p) + jnp.sum(entropy) + ce, (log_p, entropy, ce)

    (total, (log_p, entropy, ce)), grads = jax.value_and_grad(
      f, argnums=(0, 1), has_aux=True
    )(hidden, weight)
    assert log_p.shape == entropy.shape == (0,)
    assert float(ce) == 0.0 and float(total) == 0.0
    assert grads[0].shape == (0, 8) and not np.any(grads[1])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("chunk_size", [None, CHUNK], ids=["dense", "chunk"])
def test_all_tokens_masked(reduction, chunk_size):
  """Every token masked (where, or every label -100), with class weights
  and smoothing: values 0 and gradients exactly 0."""
  hidden, weight, bias, class_weights, labels, _, _ = _inputs(11, np.float32)
  for extra in (
    dict(where=np.zeros((B, T), bool)),
    dict(ignore_index=IGNORE),
  ):
    y = np.full_like(labels, IGNORE) if "ignore_index" in extra else labels
    y = np.maximum(y, 0) if "where" in extra else y

    def f(h, w, b, cw, extra=extra, y=y):
      return jnp.sum(
        jaxloss.linear_cross_entropy(
          h,
          w,
          y,
          bias=b,
          class_weights=cw,
          label_smoothing=0.1,
          chunk_size=chunk_size,
          reduction=reduction,
          **extra,
        )  # fmt: skip
      )

    value, grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3)))(
      hidden, weight, bias, class_weights
    )
    assert float(value) == 0.0
    for g in grads:
      assert not np.any(np.asarray(g))


def test_bfloat16_hidden():
  """bfloat16 hidden states are computed in float32 (float32 results) and
  equal their float32 upcast's, for both functions and both paths."""
  hidden, weight, bias, class_weights, labels, _, _ = _inputs(12, np.float32)
  labels = np.where(labels == IGNORE, 0, labels)
  half = jnp.asarray(hidden, jnp.bfloat16)
  up = half.astype(jnp.float32)
  for chunk_size in (None, CHUNK):
    lp = functools.partial(
      jaxloss.linear_log_probs, return_entropy=True, chunk_size=chunk_size
    )
    ce = functools.partial(
      jaxloss.linear_cross_entropy,
      class_weights=class_weights,
      label_smoothing=0.1,
      chunk_size=chunk_size,
    )

    @jax.jit  # one program per path
    def run(half, up, lp=lp, ce=ce):
      pairs = [
        (fn(half, weight, labels, bias=bias), fn(up, weight, labels, bias=bias))
        for fn in (lp, ce)
      ]
      return pairs, jax.grad(lambda h: ce(h, weight, labels, bias=bias))(half)

    pairs, grad = run(half, up)
    for got, want in pairs:
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.dtype == jnp.float32
        assert_close(g, w, rtol=1e-6, atol=1e-6)
    assert grad.dtype == jnp.bfloat16


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_gradient_of_a_jitted_call(reduction):
  # grad(jit(loss)), the loss jitted apart from its gradient: the engine's
  # custom VJPs take every array as an argument (a closed-over one leaked:
  # "No constant handler for type: DynamicJaxprTracer"). Compared with
  # optax's materialised cross-entropy plus the z-loss.
  rng = np.random.default_rng(3)
  hidden = jnp.asarray(rng.normal(size=(10, 8)), jnp.float32)
  weight = jnp.asarray(rng.normal(size=(8, 16)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 16, size=10), jnp.int32)
  options = {"label_smoothing": 0.1, "z_loss": 1e-3, "chunk_size": 4}
  loss = jax.jit(
    lambda h, w: jaxloss.linear_cross_entropy(
      h, w, labels, reduction=reduction, **options
    )
  )

  def reference(h, w):
    logits = h @ w
    targets = optax.smooth_labels(jax.nn.one_hot(labels, 16), 0.1)
    values = optax.losses.softmax_cross_entropy(logits, targets)
    values += 1e-3 * jnp.square(jax.nn.logsumexp(logits, axis=-1))
    return values if reduction == "none" else jnp.mean(values)

  total = lambda f: lambda h, w: jnp.sum(f(h, w))
  grads = jax.grad(total(loss), argnums=(0, 1))(hidden, weight)
  expected = jax.grad(total(reference), argnums=(0, 1))(hidden, weight)
  for got, want in zip(grads, expected):
    assert_close(got, want, rtol=1e-5, atol=1e-6)
