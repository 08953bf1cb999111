"""jaxloss._core: the reduction contract, checks, safe numerics, checked()."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from jax.experimental import checkify

import jaxloss
from jaxloss._core import checks, chunking, numerics, reduction, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction

# --------------------------------------------------------------------------- #
# reduce

VALUES = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
WEIGHTS = np.array([[0.5, 1.0, 2.0], [1.0, 0.0, 3.0]], np.float32)
MASK = np.array([[True, False, True], [False, True, True]])


def test_reduce_none_sum_mean_batchmean_against_numpy():
  w, m, v = WEIGHTS.astype(np.float64), MASK, VALUES.astype(np.float64)
  np.testing.assert_allclose(
    jaxloss.reduce(VALUES, "none", weights=WEIGHTS, where=MASK),
    np.where(m, w * v, 0.0),
    rtol=1e-6,
  )
  np.testing.assert_allclose(
    jaxloss.reduce(VALUES, "sum", weights=WEIGHTS, where=MASK),
    (w * v)[m].sum(),
    rtol=1e-6,
  )
  np.testing.assert_allclose(
    jaxloss.reduce(VALUES, "mean", weights=WEIGHTS, where=MASK),
    (w * v)[m].sum() / w[m].sum(),
    rtol=1e-6,
  )
  np.testing.assert_allclose(
    jaxloss.reduce(VALUES, "mean", where=MASK), v[m].mean(), rtol=1e-6
  )
  np.testing.assert_allclose(
    jaxloss.reduce(VALUES, "mean"), v.mean(), rtol=1e-6
  )
  np.testing.assert_allclose(
    jaxloss.reduce(VALUES, "batchmean", where=MASK), v[m].sum() / 2, rtol=1e-6
  )


def test_reduce_default_is_none():
  np.testing.assert_array_equal(jaxloss.reduce(VALUES), VALUES)


def test_reduce_weights_and_where_broadcast():
  row_weights = np.array([[2.0], [3.0]], np.float32)
  row_mask = np.array([[True], [False]])
  got = jaxloss.reduce(VALUES, "mean", weights=row_weights, where=row_mask)
  np.testing.assert_allclose(got, (2 * VALUES[0]).sum() / 6.0, rtol=1e-6)


def test_all_masked_mean_is_zero_with_finite_gradient():
  none = np.zeros_like(MASK)

  def f(v):
    return jaxloss.reduce(v, "mean", where=none)

  assert float(f(VALUES)) == 0.0
  grad = jax.grad(f)(jnp.asarray(VALUES))
  np.testing.assert_array_equal(grad, np.zeros_like(VALUES))


def test_masked_nan_does_not_leak():
  values = jnp.array([1.0, jnp.nan])
  assert (
    float(jaxloss.reduce(values, "sum", where=jnp.array([True, False]))) == 1.0
  )


def test_zero_total_weight_mean_is_zero():
  assert (
    float(jaxloss.reduce(VALUES, "mean", weights=np.zeros_like(VALUES))) == 0.0
  )


def test_unknown_reduction_lists_the_valid_ones():
  with pytest.raises(ValueError, match="'none', 'sum', 'mean', 'batchmean'"):
    jaxloss.reduce(VALUES, "average")


def test_bad_mask_and_weights():
  with pytest.raises(TypeError, match="where.*boolean"):
    jaxloss.reduce(VALUES, "sum", where=np.ones(3, np.int32))
  with pytest.raises(ValueError, match=r"weights.*\(4,\).*\(2, 3\)"):
    jaxloss.reduce(VALUES, "sum", weights=np.ones(4, np.float32))


def test_split_where_element_and_example_masks():
  shape = (2, 3)
  elements, examples = reduction.split_where(
    jnp.array([True, False]), shape, -1
  )
  np.testing.assert_array_equal(elements, [[True] * 3, [False] * 3])
  np.testing.assert_array_equal(examples, [True, False])
  elements, examples = reduction.split_where(jnp.asarray(MASK), shape, 1)
  np.testing.assert_array_equal(elements, MASK)
  np.testing.assert_array_equal(examples, [True, True])
  assert reduction.split_where(None, shape, -1) == (None, None)


# --------------------------------------------------------------------------- #
# @loss and checks


@loss(labels=value_checks.unit_interval)
def my_loss(predictions, labels, *, reduction="none"):
  """A loss defined the jaxloss way, for these tests."""
  predictions, labels = checks.same_shape_floats(
    predictions=predictions, labels=labels
  )
  return jaxloss.reduce(predictions - labels, reduction)


@loss
def outer_loss(x, *, reduction="none"):
  """A loss that calls another public loss."""
  return my_loss(x, x[:-1], reduction=reduction)


def test_loss_decorator_names_the_loss_in_every_check():
  with pytest.raises(ValueError) as info:
    my_loss(jnp.zeros((2, 3)), jnp.zeros((3, 2)))
  message = str(info.value)
  assert message.startswith("my_loss: arguments must have the same shape")
  assert "`predictions` (2, 3)" in message and "`labels` (3, 2)" in message
  with pytest.raises(ValueError, match="^my_loss: unknown reduction='x'"):
    my_loss(jnp.zeros(2), jnp.zeros(2), reduction="x")


def test_loss_decorator_keeps_the_outer_name_and_resets_it():
  with pytest.raises(ValueError, match="^outer_loss: arguments must have"):
    outer_loss(jnp.zeros(3))
  with pytest.raises(ValueError, match="^my_loss: arguments must have"):
    my_loss(jnp.zeros(3), jnp.zeros(2))  # the outer name did not stick
  with pytest.raises(ValueError, match="^reduce: unknown reduction"):
    jaxloss.reduce(VALUES, "average")  # a bare reduce names itself


def test_loss_decorator_validates_reduction_before_computing():
  calls = []

  @loss
  def counting(x, *, reduction: Reduction = "none"):
    calls.append(1)
    return jaxloss.reduce(x, reduction)

  with pytest.raises(ValueError, match="^counting: unknown reduction"):
    counting(jnp.zeros(2), reduction="average")
  assert calls == []


def test_loss_decorator_keeps_signature_doc_and_value_rules():
  import inspect

  assert my_loss.__name__ == "my_loss" and "jaxloss way" in my_loss.__doc__
  assert list(inspect.signature(my_loss).parameters) == [
    "predictions",
    "labels",
    "reduction",
  ]
  with pytest.raises(checkify.JaxRuntimeError, match="my_loss: argument `la"):
    jaxloss.checked(my_loss)(jnp.zeros(2), jnp.array([0.5, 2.0]))
  jitted = jax.jit(my_loss, static_argnames="reduction")
  assert float(jitted(jnp.ones(2), jnp.zeros(2), reduction="sum")) == 2.0


def test_checks_dtypes():
  with pytest.raises(
    TypeError, match="my_loss: argument `predictions` must be a floating"
  ):
    my_loss(jnp.zeros(3, jnp.int32), jnp.zeros(3))
  with pytest.raises(TypeError, match="jaxloss: argument `labels` must hold"):
    checks.as_labels("labels", jnp.zeros(3))  # outside a loss
  assert checks.as_float("x", jnp.zeros(2, jnp.bfloat16)).dtype == jnp.float32
  assert checks.as_float("x", jnp.zeros(2, jnp.float16)).dtype == jnp.float32


def test_checks_ranks():
  with pytest.raises(
    ValueError, match=r"`x` must have rank 2 or 3, got .*\(4,\)"
  ):
    checks.rank("x", jnp.zeros(4), (2, 3))
  with pytest.raises(ValueError, match=r"`x` must have rank >= 2 \(\[b, n\]\)"):
    checks.min_rank("x", jnp.zeros(4), 2, "[b, n]")
  checks.min_rank("x", jnp.zeros((1, 2, 3)), 2)


def test_checks_options_and_hyperparameters():
  with pytest.raises(
    ValueError, match="jaxloss: unknown kind='x'; valid values are 'a', 'b'"
  ):
    checks.option("kind", "x", ("a", "b"))
  with pytest.raises(ValueError, match="`temperature` must be > 0"):
    checks.positive("temperature", 0.0)
  with pytest.raises(ValueError, match="`gamma` must be >= 0"):
    checks.nonnegative("gamma", -1)
  with pytest.raises(ValueError, match=r"`margin` must lie in \[-1, 1\]"):
    checks.in_range("margin", np.float32(2.0), -1, 1)
  checks.positive("temperature", jnp.asarray(-1.0))  # traced: not checked


def test_is_static_number_is_the_one_rule():
  for static in (1, 2.5, np.float32(1.0), np.int64(3)):
    assert checks.is_static_number(static)
  for other in (True, jnp.asarray(1.0), np.ones(1), None, "1"):
    assert not checks.is_static_number(other)


def test_checks_are_static_under_jit():
  @jax.jit
  def f(x, y):
    return my_loss(x, y)

  with pytest.raises(ValueError, match="my_loss: arguments must have the same"):
    f(jnp.zeros(2), jnp.zeros(3))


# --------------------------------------------------------------------------- #
# numerics


def test_safe_norm_value_and_zero_gradient_at_zero():
  x = jnp.array([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(numerics.safe_norm(x), [5.0, 0.0])
  grad = jax.grad(lambda v: numerics.safe_norm(v).sum())(x)
  np.testing.assert_allclose(grad, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_safe_sqrt_and_divide_gradients_at_zero():
  assert float(jax.grad(numerics.safe_sqrt)(0.0)) == 0.0
  assert float(jax.grad(lambda d: numerics.safe_divide(1.0, d))(0.0)) == 0.0
  np.testing.assert_allclose(
    numerics.safe_divide(jnp.array(3.0), jnp.array(2.0)), 1.5
  )


def test_log1mexp_against_float64():
  x = np.array([-1e-8, -1e-3, -0.5, -0.69, -0.7, -5.0, -50.0])
  # float64 reference; the switch point differs from the implementation's
  # (log 2), so the -0.69 and -0.5 points compare the two formulas.
  expected = np.where(x > -0.3, np.log(-np.expm1(x)), np.log1p(-np.exp(x)))
  with jax.enable_x64(True):
    np.testing.assert_allclose(
      numerics.log1mexp(jnp.asarray(x)), expected, rtol=1e-12
    )
  np.testing.assert_allclose(
    numerics.log1mexp(jnp.asarray(x, jnp.float32)), expected, rtol=2e-6
  )


def test_masked_logsumexp_empty_row_is_zero_with_zero_gradient():
  x = jnp.array([[1.0, 2.0, 3.0], [1e4, -1e4, 5.0]])
  mask = jnp.array([[True, False, True], [False, False, False]])
  got = numerics.masked_logsumexp(x, mask)
  np.testing.assert_allclose(got, [np.logaddexp(1.0, 3.0), 0.0], rtol=1e-6)
  grad = jax.grad(lambda v: numerics.masked_logsumexp(v, mask).sum())(x)
  p = np.exp([1.0, 3.0] - np.logaddexp(1.0, 3.0))
  np.testing.assert_allclose(grad, [[p[0], 0, p[1]], [0, 0, 0]], rtol=1e-6)
  np.testing.assert_allclose(
    numerics.masked_logsumexp(x, None, axis=0),
    np.logaddexp([1.0, 2.0, 3.0], [1e4, -1e4, 5.0]),
    rtol=1e-6,
  )
  np.testing.assert_allclose(
    numerics.masked_log_softmax(x, -1, mask),
    [[1 - np.logaddexp(1, 3), 0, 3 - np.logaddexp(1, 3)], [0, 0, 0]],
    rtol=1e-6,
  )


def test_masked_max_and_min():
  x = jnp.array([[1.0, -2.0, 3.0], [4.0, 5.0, 6.0]])
  mask = jnp.array([[True, True, False], [False, False, False]])
  np.testing.assert_array_equal(numerics.masked_max(x, mask), [1.0, 0.0])
  np.testing.assert_array_equal(numerics.masked_min(x, mask), [-2.0, 0.0])
  np.testing.assert_array_equal(numerics.masked_max(x, None), [3.0, 6.0])


def test_l2_normalize_epsilon_rule():
  x = jnp.array([[3.0, 4.0], [1e-7, 0.0], [0.0, 0.0]])
  # torch.nn.functional.normalize: x / max(|x|, 1e-12).
  np.testing.assert_allclose(
    numerics.l2_normalize(x), [[0.6, 0.8], [1.0, 0.0], [0.0, 0.0]], rtol=1e-6
  )
  # optax.losses.ntxent: x / sqrt(max(|x|^2, eps)), eps = finfo(f32).eps.
  eps = float(np.finfo(np.float32).eps)
  np.testing.assert_allclose(
    numerics.l2_normalize(x, eps=np.sqrt(eps))[1, 0], 1e-7 / np.sqrt(eps)
  )
  grad = jax.grad(lambda v: numerics.l2_normalize(v).sum())(x)
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad[2], [1e12, 1e12], rtol=1e-6)  # torch's


def test_safe_pow_zero_to_the_zero_is_one_and_gradients_are_finite():
  x = jnp.array([0.0, 0.0, 4.0, -1.0])
  p = jnp.array([0.0, 0.5, 0.5, 2.0])
  np.testing.assert_allclose(numerics.safe_pow(x, p), [1.0, 0.0, 2.0, 0.0])
  gx, gp = jax.grad(lambda a, b: numerics.safe_pow(a, b).sum(), (0, 1))(x, p)
  np.testing.assert_allclose(gx, [0.0, 0.0, 0.25, 0.0])
  np.testing.assert_allclose(gp, [0.0, 0.0, 2.0 * np.log(4.0), 0.0], rtol=1e-6)
  assert float(numerics.safe_pow(jnp.array(2.0), 3)) == 8.0


def test_masked_mean_is_zero_where_nothing_is_unmasked():
  x = jnp.array([[1.0, 2.0, jnp.nan], [4.0, 5.0, 6.0]])
  mask = jnp.array([[True, True, False], [False, False, False]])
  np.testing.assert_array_equal(numerics.masked_mean(x, mask), [1.5, 0.0])
  grad = jax.grad(lambda v: numerics.masked_mean(v, mask).sum())(x)
  np.testing.assert_array_equal(grad, [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
  got = numerics.masked_mean(x[1:], None, (0, 1), keepdims=True)
  np.testing.assert_array_equal(got, [[5.0]])


def test_clamped_log_is_torchs():
  # torch.nn.functional.binary_cross_entropy clamps each log at -100.
  # A subnormal p may be flushed to 0 by XLA:CPU, so the test stays normal.
  p = jnp.array([0.0, 1e-30, 0.5, 1.0])
  expected = [-100, np.log(1e-30), np.log(0.5), 0]
  np.testing.assert_allclose(numerics.clamped_log(p), expected, rtol=1e-6)
  grad = jax.grad(lambda q: numerics.clamped_log(q).sum())(p)
  np.testing.assert_allclose(grad, [0, 1e30, 2, 1], rtol=1e-6)


def test_axes_reads_ints_sequences_and_none():
  assert checks.axes(-1, 3) == (2,)
  assert checks.axes((2, 0), 3) == (2, 0)  # the order given
  assert checks.axes([1], 3) == (1,)
  assert checks.axes(None, 2) == (0, 1)
  for bad in ((1, -2), ()):
    with pytest.raises(ValueError, match="must name one or more distinct"):
      checks.axes(bad, 3)
  with pytest.raises(ValueError, match="out of bounds"):
    checks.axes(3, 3)
  with pytest.raises(TypeError, match="`axis` must be an int"):
    checks.axes(1.0, 3)


def test_xlogx_and_safe_log_at_zero():
  assert float(numerics.xlogx(jnp.array(0.0))) == 0.0
  assert np.isfinite(float(jax.grad(numerics.xlogx)(0.0)))
  assert np.isfinite(float(numerics.safe_log(jnp.array(0.0))))
  assert np.isfinite(float(jax.grad(numerics.safe_log)(0.0)))


# --------------------------------------------------------------------------- #
# checked


def test_checked_passes_good_values_through():
  logits = jnp.array([[1.0, 2.0], [0.5, -1.0]])
  labels = jnp.array([1, 0])
  fn = jaxloss.softmax_cross_entropy_with_integer_labels
  np.testing.assert_allclose(
    jaxloss.checked(fn)(logits, labels), fn(logits, labels)
  )


def test_checked_catches_bad_values():
  fn = jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels)
  with pytest.raises(
    checkify.JaxRuntimeError,
    match="softmax_cross_entropy_with_integer_labels: argument `labels` "
    r"must hold class indices in \[0, 2\)",
  ):
    fn(jnp.zeros((2, 2)), jnp.array([0, 2]))
  with pytest.raises(
    checkify.JaxRuntimeError, match="argument `logits` contains NaN or inf"
  ):
    fn(jnp.array([[0.0, jnp.inf]]), jnp.array([0]))
  # ignore_index is allowed by the label rule.
  fn(jnp.zeros((2, 2)), jnp.array([0, -100]), ignore_index=-100)


# --------------------------------------------------------------------------- #
# reduce over random shapes, masks and weights (hypothesis, derandomized)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
  data=st.data(),
  shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
  reduction_name=st.sampled_from(["sum", "mean", "batchmean"]),
)
def test_reduce_matches_numpy_on_random_inputs(data, shape, reduction_name):
  values = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-10, 10)))
  weights = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 3)))
  mask = data.draw(hnp.arrays(np.bool_, shape))
  kept = np.where(mask, weights * values, 0.0)
  expected = {
    "sum": kept.sum(),
    "mean": kept.sum() / weights[mask].sum()
    if weights[mask].sum() > 0
    else 0.0,
    "batchmean": kept.sum() / shape[0],
  }[reduction_name]
  with jax.enable_x64(True):
    got = jaxloss.reduce(values, reduction_name, weights=weights, where=mask)
  np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_checked_label_rule_respects_where_and_tuple_axes():
  fn = jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels)
  fn(jnp.zeros((2, 3)), jnp.array([0, -1]), where=jnp.array([True, False]))
  with pytest.raises(
    checkify.JaxRuntimeError, match=r"class indices in \[0, 3\)"
  ):
    fn(jnp.zeros((2, 3)), jnp.array([0, -1]), where=jnp.array([True, True]))
  fn(jnp.zeros((2, 2, 3)), jnp.array([5, 0]), axis=(1, 2))  # 6 classes


def test_lower_rank_mask_is_an_error_not_a_silent_broadcast():
  square = np.ones((3, 3), np.float32)
  with pytest.raises(ValueError, match=r"where.*\(3,\).*\[batch, 1\]"):
    jaxloss.reduce(square, "sum", where=np.array([True, False, True]))
  with pytest.raises(ValueError, match=r"weights.*\(3,\)"):
    jaxloss.reduce(square, "sum", weights=np.ones(3, np.float32))
  got = jaxloss.reduce(square, "sum", where=np.array([[True], [False], [True]]))
  assert float(got) == 6.0


def test_auto_chunk_size_rule_worked_by_hand():
  """Dense while rows × columns × 4 copies × max(itemsize, 4) bytes fit
  16 MiB; else the largest power of two that keeps rows × chunk within it,
  at least 128; dense again when that chunk covers every column."""
  auto = chunking.auto_chunk_size
  assert auto(1024, 1024, jnp.float32) is None  # 16 MiB
  assert auto(1025, 1025, jnp.float32) == 512  # 1025 × 512 × 16 < 16 MiB
  assert auto(2048, 2048, jnp.float32) == 512  # 2048 × 512 × 16 = 16 MiB
  assert auto(4096, 8192, jnp.float32) == 256
  assert auto(4096, 8192, jnp.bfloat16) == 256  # counted as 4 bytes
  assert auto(4096, 8192, jnp.float64) == 128  # 4096 × 128 × 32 = 16 MiB
  assert auto(8192, 8192, jnp.float32) == 128
  assert auto(65536, 65536, jnp.float32) == 128  # floored: 128 MiB blocks
  assert auto(4096, 256, jnp.float32) is None  # 16 MiB
  assert auto(100_000, 200, jnp.float32) == 128  # floored
  assert auto(100_000, 128, jnp.float32) is None  # the floor covers it all
  assert auto(0, 10**9, jnp.float32) == 2**20  # no rows: counted as one


def test_safe_pow_lets_nan_through():
  """A NaN input stays NaN (it used to become 0, so triplet_margin_loss gave
  a finite loss for a NaN anchor)."""
  x = jnp.array([jnp.nan, 0.0, 4.0])
  assert np.isnan(numerics.safe_pow(x, 2.0)[0])
  np.testing.assert_allclose(numerics.safe_pow(x, 2.0)[1:], [0.0, 16.0])
  anchor = jnp.array([[jnp.nan, 0.0]])
  positive = negative = jnp.zeros((1, 2))
  assert np.isnan(jaxloss.triplet_margin_loss(anchor, positive, negative))


def test_batchmean_of_an_empty_batch_is_zero():
  """The all-masked result (torch's kl_div gives 0 / 0 = NaN)."""
  empty = jnp.zeros((0, 3))
  assert float(reduction.reduce(empty, "batchmean")) == 0.0
  grad = jax.grad(lambda v: reduction.reduce(v, "batchmean"))(empty)
  assert grad.shape == (0, 3)
