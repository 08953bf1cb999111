"""The engine of the linear-layer losses, jaxloss._core.linear_softmax.

Its chunked paths (:func:`token_values`, custom VJP recomputing each chunk;
:func:`token_sum`, gradients in the forward pass) must equal
:func:`dense_components` differentiated by plain autodiff (the materialised
``[tokens, vocab]`` logits), in value and in the gradient of every float
input and parameter, in float64 to 1e-10. The problems here are small but
have several token chunks AND a tail chunk AND several weight slices AND a
tail slice (``Problem(token_chunk=4, slice_size=4)`` over 10 tokens and 13
classes), which the public functions only reach at ``dim × vocab`` of
several MiB (``slice_size`` is at least 128 columns).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss._core import linear_softmax as ls
from jaxloss.testing import assert_close

F64_TOL = dict(rtol=1e-10, atol=1e-10)
N, D, V = 10, 3, 13
ALL = frozenset({"label", "sum", "weighted_sum", "expected"})


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _inputs(seed=0, cap=True, scale=True, bias=True, class_weights=True):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, V, size=N).astype(np.int32)
  labels[3] = -1  # matches no column: its label component is 0
  labels[-1] = V - 1  # in the tail slice and the tail chunk
  x = ls.Inputs(
    hidden=jnp.asarray(rng.normal(size=(N, D))),
    weight=jnp.asarray(rng.normal(size=(D, V))),
    labels=jnp.asarray(labels),
    bias=jnp.asarray(0.5 * rng.normal(size=V)) if bias else None,
    class_weights=jnp.asarray(rng.uniform(0.5, 2, size=V))
    if class_weights
    else None,
    cap=jnp.asarray(2.5) if cap else None,
    scale=jnp.asarray(1 / 0.7) if scale else None,
    vocab_start=jnp.zeros((), jnp.int32),
  )
  params = {
    "a": jnp.asarray(rng.uniform(0.5, 1.5, size=N)),  # per token
    "b": jnp.asarray(0.3),  # scalar
  }
  return x, params


def _token_fn(needs, columns=1):
  """A token_fn reading every component in ``needs``, nonlinearly, with a
  per-token and a scalar parameter; ``columns=2`` returns ``[n, 2]``."""

  def token_fn(comp, p):
    lse = comp["peak"] + comp["log_total"]
    value = p["a"] * lse
    if "label" in needs:
      value = value - p["b"] * comp["label"] + 0.1 * jnp.square(comp["label"])
    if "sum" in needs:
      value = value + 0.3 * comp["sum"] / V
    if "weighted_sum" in needs:
      value = value - 0.2 * jnp.sin(comp["weighted_sum"])
    if "expected" in needs:
      entropy = comp["log_total"] + (comp["peak"] - comp["expected"])
      value = value + 0.5 * jnp.square(entropy)
    if columns == 1:
      return value
    return jnp.stack([value, p["b"] * jnp.exp(-lse)], axis=-1)

  return token_fn


def _problem(needs, token_chunk=4, slice_size=4, filter_eps=None):
  return ls.Problem(
    vocab=V,
    needs=frozenset(needs),
    token_chunk=token_chunk,
    slice_size=slice_size,
    filter_eps=filter_eps,
  )


def _dense(token_fn, needs):
  def values(x, params):
    return token_fn(ls.dense_components(x, _problem(needs)), params)

  return values


def _grad_leaves(grads):
  """The float leaves of a ``(Inputs, params)`` cotangent (labels and
  vocab_start are integers: float0 cotangents, dropped)."""
  return [
    g for g in jax.tree.leaves(grads) if jnp.issubdtype(g.dtype, jnp.inexact)
  ]


NEEDS = {
  "label": {"label"},
  "label,sum": {"label", "sum"},
  "weighted_sum": {"weighted_sum"},
  "expected": {"expected"},
  "all": ALL,
}


def test_problem_has_several_chunks_and_slices():
  """10 = 2 × 4 + 2 tokens, 13 = 3 × 4 + 1 columns; slice_size's rule."""
  assert divmod(N, 4) == (2, 2) and divmod(V, 4) == (3, 1)
  assert ls.slice_size(8, 10**6) == 2**17  # 8 × 2**17 × 4 B = 4 MiB
  assert ls.slice_size(8192, 10**6) == 128  # at least 128
  assert ls.slice_size(8, 100) == 100  # at most the vocabulary
  # tests/test_linear_losses.py's problems: 3 slices; 8 slices of 1024.
  assert ls.slice_size(4096, 600) == 256
  assert ls.slice_size(1024, 8192) == 1024


@pytest.mark.parametrize("columns", [1, 2])
@pytest.mark.parametrize("needs", list(NEEDS), ids=list(NEEDS))
def test_token_values_equals_dense_autodiff(x64, needs, columns):
  """Values and the VJP (a distinct cotangent per value) of every float
  input: hidden, weight, bias, class weights, cap, scale and both params."""
  needs = NEEDS[needs]
  token_fn = _token_fn(needs, columns)
  x, params = _inputs()
  cotangent = jnp.asarray(
    np.random.default_rng(1).normal(size=(N,) if columns == 1 else (N, 2))
  )

  def chunked(x, params):
    return ls.token_values(token_fn, x, params, _problem(needs))

  @jax.jit
  def run(x, params):
    got, pull = jax.vjp(chunked, x, params)
    want, pull_dense = jax.vjp(_dense(token_fn, needs), x, params)
    return got, pull(cotangent), want, pull_dense(cotangent)

  got, got_grads, want, want_grads = run(x, params)
  assert got.shape == want.shape == cotangent.shape
  assert_close(got, want, **F64_TOL)
  got_grads, want_grads = _grad_leaves(got_grads), _grad_leaves(want_grads)
  assert len(got_grads) == len(want_grads) == 8
  for k, (g, w) in enumerate(zip(got_grads, want_grads, strict=True)):
    assert_close(g, w, **F64_TOL, what=f"gradient {k}")
    assert np.any(np.asarray(w) != 0) or k in _unused(needs), k


def _unused(needs):
  """Leaf indices (hidden, weight, bias, class weights, cap, scale, a, b)
  whose exact gradient is 0: the class weights without weighted_sum, b
  without label (columns=1)."""
  unused = set()
  if "weighted_sum" not in needs:
    unused.add(3)
  if "label" not in needs:
    unused.add(7)
  return unused


@pytest.mark.parametrize("needs", list(NEEDS), ids=list(NEEDS))
def test_token_sum_equals_dense_autodiff(x64, needs):
  """The scalar path (gradients taken in the forward pass) and a cotangent
  other than 1 (the backward pass scales them)."""
  needs = NEEDS[needs]
  token_fn = _token_fn(needs)
  x, params = _inputs(seed=2)

  def chunked(x, params):
    return 1.7 * ls.token_sum(token_fn, x, params, _problem(needs))

  def dense(x, params):
    return 1.7 * jnp.sum(_dense(token_fn, needs)(x, params))

  @jax.jit
  def run(x, params):
    both = (0, 1)
    return (
      jax.value_and_grad(chunked, both, allow_int=True)(x, params),
      jax.value_and_grad(dense, both, allow_int=True)(x, params),
    )

  (got, got_grads), (want, want_grads) = run(x, params)
  assert_close(got, want, **F64_TOL)
  for k, (g, w) in enumerate(
    zip(_grad_leaves(got_grads), _grad_leaves(want_grads), strict=True)
  ):
    assert_close(g, w, **F64_TOL, what=f"gradient {k}")


@pytest.mark.parametrize(
  "token_chunk,slice_size", [(1, 1), (3, 5), (10, 13), (16, 128), (7, 2)]
)
def test_chunk_and_slice_sizes_do_not_change_the_result(
  x64, token_chunk, slice_size
):
  """One token per chunk, one column per slice, exact divisions, one chunk
  larger than the batch and one slice larger than the vocabulary."""
  token_fn = _token_fn(ALL)
  x, params = _inputs(seed=3)
  problem = _problem(ALL, token_chunk, min(slice_size, V))

  @jax.jit
  def run(x, params):
    values = ls.token_values(token_fn, x, params, problem)
    total, grads = jax.value_and_grad(
      lambda x, p: ls.token_sum(token_fn, x, p, problem), (0, 1), allow_int=True
    )(x, params)
    want, want_grads = jax.value_and_grad(
      lambda x, p: jnp.sum(_dense(token_fn, ALL)(x, p)), (0, 1), allow_int=True
    )(x, params)
    return (
      values,
      total,
      grads,
      _dense(token_fn, ALL)(x, params),
      want,
      (want_grads),
    )

  values, total, grads, want_values, want, want_grads = run(x, params)
  assert_close(values, want_values, **F64_TOL)
  assert_close(total, want, **F64_TOL)
  for g, w in zip(_grad_leaves(grads), _grad_leaves(want_grads), strict=True):
    assert_close(g, w, **F64_TOL)


def test_bfloat16_weight_is_upcast_per_slice(x64):
  """A bfloat16 weight gives the values and gradients of its float64 upcast
  (the products are in the hidden states' dtype); its gradient comes back
  in bfloat16, the float64 one rounded."""
  token_fn = _token_fn(ALL)
  x, params = _inputs(seed=4)
  x16 = x._replace(weight=x.weight.astype(jnp.bfloat16))
  x64_ = x._replace(weight=x16.weight.astype(jnp.float64))
  problem = _problem(ALL)

  def total(x):
    return ls.token_sum(token_fn, x, params, problem)

  got, got_grads = jax.jit(jax.value_and_grad(total, allow_int=True))(x16)
  want, want_grads = jax.jit(jax.value_and_grad(total, allow_int=True))(x64_)
  assert got.dtype == jnp.float64
  assert got_grads.weight.dtype == jnp.bfloat16
  assert_close(got, want, **F64_TOL)
  assert_close(got_grads.hidden, want_grads.hidden, **F64_TOL)
  assert_close(
    got_grads.weight, want_grads.weight.astype(jnp.bfloat16), rtol=0, atol=0
  )


# --------------------------------------------------------------------------- #
# filter_eps


def _peaked(seed=5):
  """Tokens whose softmax is peaked on columns 0..3 (the first slice of 4):
  the other slices hold probabilities below 1e-6 and none of the labels."""
  x, params = _inputs(seed, cap=False, scale=False, class_weights=False)
  rng = np.random.default_rng(seed)
  hidden = np.concatenate(
    [np.ones((N, 1)), 0.1 * rng.normal(size=(N, D - 1))], axis=1
  )
  weight = 0.1 * rng.normal(size=(D, V))
  weight[0, :4] += 20.0  # the significant slice: logits about 20
  labels = rng.integers(0, 4, size=N).astype(np.int32)
  return x._replace(
    hidden=jnp.asarray(hidden),
    weight=jnp.asarray(weight),
    labels=jnp.asarray(labels),
    bias=jnp.zeros(V),
  ), params


def test_filter_eps_skips_insignificant_slices(x64):
  """With filter_eps=1e-6 the products of the slices of columns 4..12 are
  skipped: their weight gradients are exactly 0, while the exact ones are
  tiny but not 0; the value is unchanged; the hidden states' gradient is
  within the documented bound of the exact one (a dropped entry of the
  logits' gradient is p < filter_eps times the token's coefficient, 1
  here); the bias gradient (a sum, no product) stays exact."""
  needs = {"label"}

  def token_fn(comp, p):
    return comp["peak"] + comp["log_total"] - comp["label"]

  x, params = _peaked()
  z = np.asarray(x.hidden @ x.weight)
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  assert p[:, 4:].max() < 1e-6 and p[:, :4].max(0).min() > 1e-6

  def run(eps):
    problem = _problem(needs, filter_eps=eps)
    return jax.jit(
      jax.value_and_grad(
        lambda x: ls.token_sum(token_fn, x, params, problem), allow_int=True
      )
    )(x)

  exact, exact_grads = run(None)
  value, grads = run(1e-6)
  assert_close(value, exact, **F64_TOL)
  assert np.all(np.asarray(grads.weight[:, 4:]) == 0)
  tiny = np.abs(np.asarray(exact_grads.weight[:, 4:]))
  assert np.all(tiny > 0) and np.all(tiny < N * 1e-6)
  # The first slice is kept: its gradients are exact; so is the bias's.
  assert_close(grads.weight[:, :4], exact_grads.weight[:, :4], **F64_TOL)
  assert_close(grads.bias, exact_grads.bias, **F64_TOL)
  # Bound: |Δ dz_nv| = p_nv, so |Δ dhidden_n| ≤ Σ_v p_nv |W_v| over the
  # skipped columns; the hidden states' gradient does change.
  bound = p[:, 4:] @ np.abs(np.asarray(x.weight[:, 4:])).T
  change = np.abs(np.asarray(grads.hidden - exact_grads.hidden))
  assert np.all(change <= bound + 1e-14) and np.any(change > 0)  # + rounding


def test_filter_eps_keeps_a_slice_holding_a_label(x64):
  """A label in an otherwise insignificant slice keeps that slice for its
  chunk of tokens (tokens 0..3): the label's −(1 − p) term of the weight's
  gradient is never dropped; the other chunks skip it (their terms are
  within the bound Σ_n p_nv |h_n|), and the slice 4..7, with no label, is
  skipped everywhere."""

  def token_fn(comp, p):
    return comp["peak"] + comp["log_total"] - comp["label"]

  x, params = _peaked()
  labels = np.asarray(x.labels).copy()
  labels[0] = 9  # in the slice of columns 8..11
  x = x._replace(labels=jnp.asarray(labels))

  def run(eps):
    problem = _problem({"label"}, filter_eps=eps)
    return jax.jit(
      jax.grad(
        lambda x: ls.token_sum(token_fn, x, params, problem), allow_int=True
      )
    )(x)

  exact, filtered = run(None), run(1e-6)
  z = np.asarray(x.hidden @ x.weight)
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  h = np.abs(np.asarray(x.hidden))
  bound = h[4:].T @ p[4:, 8:12]  # tokens 4..9 skip the slice
  change = np.abs(np.asarray(filtered.weight[:, 8:12] - exact.weight[:, 8:12]))
  assert np.all(change <= bound + 1e-14)  # + float64 rounding at 1
  assert_close(filtered.weight[:, 9], -(1 - p[0, 9]) * x.hidden[0], rtol=1e-6)
  assert np.all(np.asarray(filtered.weight[:, 4:8]) == 0)
  assert np.all(np.asarray(exact.weight[:, 4:8]) != 0)
