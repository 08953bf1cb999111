"""jaxloss.checked for every family: a bad value raises a checkify error that
names the loss and the argument; a good value passes. (tests/test_core.py
checks that checked() returns the unchecked value; family test files check
their own rules in more detail.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss as jl
from jaxloss.testing import assert_close


def _normal(seed, *shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _uniform(seed, *shape):
  return np.random.default_rng(seed).random(shape).astype(np.float32)


LOGITS = _normal(0, 4, 3)
BOXES = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]], np.float32)
IMAGES = _uniform(1, 2, 8, 8, 1)
TOKENS = -_uniform(2, 2, 5) - 0.1  # per-token log-probabilities
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
CTC = dict(
  logits=_normal(3, 2, 6, 4),
  logit_paddings=np.zeros((2, 6), np.float32),
  label_paddings=np.array([[0, 0, 1], [0, 0, 0]], np.float32),
)
TD = dict(
  values=_normal(4, 5), rewards=_normal(5, 5), next_values=_normal(6, 5)
)


def _with(array, index, value):
  array = np.array(array)
  array[index] = value
  return array


# family: (loss, good (args, kwargs), bad (args, kwargs), the argument named)
FAMILIES = {
  "classification": (
    jl.softmax_cross_entropy_with_integer_labels,
    ((LOGITS, np.array([0, 2, 1, -100])), dict(ignore_index=-100)),
    ((LOGITS, np.array([0, 3, 1, 1])), {}),
    "labels",
  ),
  "divergence": (
    jl.kl_divergence,
    ((jax.nn.log_softmax(LOGITS), jax.nn.softmax(LOGITS[::-1])), {}),
    ((LOGITS, jax.nn.softmax(LOGITS)), {}),
    "log_predictions",
  ),
  "regression": (
    jl.gaussian_nll_loss,
    ((LOGITS, LOGITS[::-1], _uniform(7, 4, 3) + 0.1), {}),
    ((LOGITS, LOGITS[::-1], _with(_uniform(7, 4, 3), (1, 2), -0.5)), {}),
    "variances",
  ),
  "ranking": (
    jl.ranking_softmax_loss,  # a masked item's label may hold padding
    (
      (LOGITS, _with(_uniform(8, 4, 3), (0, 1), -1.0)),
      dict(where=_with(np.ones((4, 3), bool), (0, 1), False)),
    ),
    ((LOGITS, _with(_uniform(8, 4, 3), (0, 1), -1.0)), {}),
    "labels",
  ),
  "metric_learning": (
    jl.arcface_loss,
    ((np.tanh(LOGITS), np.array([0, 2, 1, 1])), {}),
    ((_with(np.tanh(LOGITS), (3, 0), 1.5), np.array([0, 2, 1, 1])), {}),
    "cosines",
  ),
  "contrastive": (
    jl.clip_loss,
    ((_normal(10, 4, 3), _normal(11, 4, 3)), {}),
    ((_with(_normal(10, 4, 3), (2, 0), np.nan), _normal(11, 4, 3)), {}),
    "image_embeddings",
  ),
  "segmentation": (
    jl.dice_loss,  # probabilities: in [0, 1], summing to 1 over the classes
    (
      (
        _uniform(12, 2, 4, 3) / _uniform(12, 2, 4, 3).sum(-1, keepdims=True),
        np.eye(3, dtype=np.float32)[[0, 1, 2, 1]][None].repeat(2, 0),
      ),
      dict(apply_softmax=False),
    ),
    (
      (_uniform(12, 2, 4, 3) + 1.5, np.ones((2, 4, 3), np.float32)),
      dict(apply_softmax=False),
    ),
    "predictions",
  ),
  "detection": (
    jl.generalized_box_iou_loss,
    ((BOXES, BOXES[::-1]), {}),
    ((BOXES, _with(BOXES, (1, 2), 0.0)), {}),
    "boxes2",
  ),
  "image": (
    jl.ssim_loss,
    ((255 * IMAGES, 255 * IMAGES[::-1]), dict(max_val=255.0, filter_size=3)),
    ((255 * IMAGES, 255 * IMAGES[::-1]), dict(filter_size=3)),
    "images",
  ),
  "sequence": (
    jl.ctc_loss,
    (
      (
        CTC["logits"],
        CTC["logit_paddings"],
        np.array([[1, 2, 0], [3, 1, 2]]),
        CTC["label_paddings"],
      ),
      {},
    ),
    (
      (
        CTC["logits"],
        CTC["logit_paddings"],  # 0 is the blank
        np.array([[1, 0, 2], [3, 1, 2]]),
        CTC["label_paddings"],
      ),
      {},
    ),
    "labels",
  ),
  "rl": (
    jl.td_loss,
    (
      (
        TD["values"],
        TD["rewards"],
        np.full(5, 0.99, np.float32),
        TD["next_values"],
      ),
      {},
    ),
    (
      (
        TD["values"],
        TD["rewards"],
        np.full(5, 1.5, np.float32),
        TD["next_values"],
      ),
      {},
    ),
    "discounts",
  ),
  "preference": (
    jl.simpo_loss,  # padded tokens (mask 0) may hold anything
    ((TOKENS, _with(TOKENS, (0, 4), 3.0), MASK, MASK), {}),
    ((_with(TOKENS, (1, 4), 3.0), TOKENS, MASK, MASK), {}),
    "chosen_logps",
  ),
  "generative": (
    jl.vae_loss,
    ((LOGITS, _uniform(13, 4, 3), LOGITS, LOGITS), {}),
    ((LOGITS, _uniform(13, 4, 3) + 1.0, LOGITS, LOGITS), {}),
    "targets",
  ),
  "semi_supervised": (
    jl.fixmatch_loss,  # a dropped labeled example may hold any label
    (
      (LOGITS, np.array([0, 2, 7, 1]), LOGITS[::-1], LOGITS),
      dict(labeled_where=np.array([True, True, False, True])),
    ),
    ((LOGITS, np.array([0, 2, 7, 1]), LOGITS[::-1], LOGITS), {}),
    "labeled_labels",
  ),
  "regularization": (
    jl.l2_regularization,
    (({"w": LOGITS, "b": np.zeros(3, np.float32)},), {}),
    (({"w": LOGITS, "b": np.array([0.0, np.inf, 0.0], np.float32)},), {}),
    "params",
  ),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_checked_raises_on_bad_values_and_passes_good_ones(family):
  loss_fn, (good_args, good_kwargs), (bad_args, bad_kwargs), arg = FAMILIES[
    family
  ]
  assert loss_fn.__module__.split(".")[1] == family
  checked = jl.checked(loss_fn)
  assert np.all(np.isfinite(checked(*good_args, **good_kwargs)))
  name = loss_fn.__name__
  with pytest.raises(
    checkify.JaxRuntimeError, match=rf"^{name}: argument `{arg}` "
  ):
    checked(*bad_args, **bad_kwargs)


@pytest.mark.parametrize(
  "loss_fn, args, kwargs, arg",
  [
    (
      jl.ms_ssim_loss,
      (-IMAGES, IMAGES),
      dict(filter_size=3, scale_weights=np.float32([0.5, 0.5])),
      "images",
    ),
    (
      jl.grpo_loss,
      (_with(TOKENS, (0, 1), 0.5), TOKENS, np.ones(2, np.float32), MASK),
      {},
      "log_probs",
    ),
    (
      jl.orpo_loss,
      (TOKENS, _with(TOKENS, (1, 2), 0.5), MASK, MASK),
      {},
      "rejected_logps",
    ),
    (
      jl.dpo_implicit_rewards,
      (
        np.float32([0.5]),
        np.float32([-1.0]),
        np.float32([-1.0]),
        np.float32([-1.0]),
      ),
      {},
      "policy_chosen_logps",
    ),
    (
      jl.q_learning_loss,
      (
        LOGITS,
        np.array([0, 1, 2, 0]),
        np.ones(4, np.float32),
        np.float32([0.9, 0.9, -0.1, 0.9]),
        LOGITS,
      ),
      {},
      "discounts",
    ),
    (
      jl.ntxent,
      (_normal(14, 4, 3), np.array([0, 0, 1, 1])),
      dict(temperature=jnp.asarray(-0.1)),
      "temperature",
    ),
    (
      jl.elastic_net_regularization,
      ({"w": LOGITS},),
      dict(l1=jnp.asarray(-1.0)),
      "l1",
    ),
  ],
)
def test_rules_added_with_the_flax_and_optax_integration(
  loss_fn, args, kwargs, arg
):
  with pytest.raises(
    checkify.JaxRuntimeError, match=rf"^{loss_fn.__name__}: argument `{arg}` "
  ):
    jl.checked(loss_fn)(*args, **kwargs)


def test_ge2e_declares_w_positive():
  # Checked through its rule: running ge2e_loss eagerly under checkify takes
  # seconds, and checked() itself is exercised above.
  rule = jl.ge2e_loss.__jaxloss_value_rules__["w"]
  assert not bool(rule({"w": jnp.asarray(-2.0)}, "w")[0])
  assert bool(rule({"w": jnp.asarray(2.0)}, "w")[0])


def test_a_rule_may_report_the_offending_values():
  """A rule returning ``(ok, what, values)`` has the values formatted into
  its message (``dice_loss``'s sums over the classes, under ``jit``'s
  tracing where the loss itself cannot look at them)."""
  p = _uniform(15, 2, 4, 3)
  p = p / p.sum(-1, keepdims=True)
  p[1, 2] *= 0.5  # in [0, 1], summing to 0.5
  targets = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]][None].repeat(2, 0)
  with pytest.raises(
    checkify.JaxRuntimeError,
    match=r"^dice_loss: argument `predictions` must lie in \[0, 1\] and sum "
    r"to 1 along the class axis \(within 1e-05\) when apply_softmax=False; "
    r"found values in \[0\.\d{6}, 0\.\d{6}\], sums in "
    r"\[0\.500000, 1\.000000\]",
  ):
    jl.checked(jl.dice_loss)(p, targets, apply_softmax=False)
  rule = jl.dice_loss.__jaxloss_value_rules__["predictions"]
  ok, what, values = rule(
    {"predictions": p, "targets": targets, "apply_softmax": False},
    "predictions",
  )
  assert not bool(ok)
  found = {k: float(v) for k, v in values.items()}
  assert found["low"] == pytest.approx(0.5)
  assert found["high"] == pytest.approx(1.0)
  assert what.format(**values).endswith("sums in [0.500000, 1.000000]")


CLASS_INDEX_REPORT = (
  r"^softmax_cross_entropy_with_integer_labels: argument `labels` must hold "
  r"class indices in \[0, 3\); found {label} at index {index}, {count} out "
  r"of range, labels in \[{low}, {high}\]"
)


@pytest.mark.parametrize(
  "labels, kwargs, found",
  [
    # the first offending label, in row-major order, with its index
    (
      [0, -1, 2, 3],
      {},
      dict(label=-1, index=r"\(1,\)", count=2, low=-1, high=3),
    ),
    # ignored and masked labels are neither reported nor in the range
    (
      [[0, 1, 2], [-100, 7, 9]],
      dict(ignore_index=-100, where=np.array([[1, 1, 1], [1, 1, 0]], bool)),
      dict(label=7, index=r"\(1, 1\)", count=1, low=0, high=7),
    ),
  ],
)
def test_class_index_report_names_the_offending_label(labels, kwargs, found):
  """Issue 19 §1: checked reports an out-of-range label with the loss, the
  argument and the value (eagerly, and under jit when the step runs)."""
  labels = np.array(labels, np.int32)
  logits = np.zeros(labels.shape + (3,), np.float32)
  match = CLASS_INDEX_REPORT.format(**found)
  fn = jl.checked(jl.softmax_cross_entropy_with_integer_labels)
  with pytest.raises(checkify.JaxRuntimeError, match=match):
    fn(logits, labels, **kwargs)
  with pytest.raises(Exception, match=match[1:]):  # the callback's message
    jax.jit(fn)(logits, labels, **kwargs)


def test_class_index_exempts_tokens_masked_by_a_leading_axes_where():
  """A router's ``[tokens]`` mask exempts its ``[tokens, k]`` expert
  indices; an out-of-range index on a kept token is still reported."""
  probs = np.full((4, 3), 1 / 3, np.float32)
  experts = np.array([[0, 1], [2, 1], [5, 0], [1, 2]], np.int32)
  fn = jl.checked(jl.load_balancing_loss)
  masked = np.array([True, True, False, True])
  want = jl.load_balancing_loss(probs, experts, num_experts=3, where=masked)
  got = fn(probs, experts, num_experts=3, where=masked)
  assert np.isfinite(got) and got == want
  with pytest.raises(
    checkify.JaxRuntimeError,
    match=r"^load_balancing_loss: argument `expert_indices` must hold class "
    r"indices in \[0, 3\); found 5 at index \(2, 0\), 1 out of range",
  ):
    fn(probs, experts, num_experts=3, where=np.ones(4, bool))


def test_class_index_report_of_a_scalar_label_and_an_empty_batch():
  fn = jl.checked(jl.softmax_cross_entropy_with_integer_labels)
  with pytest.raises(
    checkify.JaxRuntimeError,
    match=r"class indices in \[0, 3\); found 5, 1 out of range, labels in "
    r"\[5, 5\]",
  ):
    fn(np.zeros(3, np.float32), np.int32(5))
  empty = fn(np.zeros((0, 3), np.float32), np.zeros(0, np.int32))
  assert empty.shape == (0,)


def test_checked_under_jit_raises_when_the_step_runs():
  """Under jax.jit a check becomes a host callback: good inputs run, a bad
  one raises when the step runs, naming the loss, the argument and (for a
  rule that reports them) the values; checkify.checkify of the jitted step
  works as before."""
  bce = jax.jit(jl.checked(jl.sigmoid_binary_cross_entropy))
  labels = np.array([0.0, 1.0], np.float32)
  good = np.array([0.2, -0.5], np.float32)
  assert_close(bce(good, labels), jl.sigmoid_binary_cross_entropy(good, labels))
  with pytest.raises(
    Exception,
    match="sigmoid_binary_cross_entropy: argument `logits` contains NaN",
  ):
    bce(np.array([np.nan, 0.0], np.float32), labels)
  dice = jax.jit(jl.checked(jl.dice_loss), static_argnames=("apply_softmax",))
  p = np.full((1, 4, 3), 0.2, np.float32)  # sums to 0.6
  targets = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]][None]
  with pytest.raises(Exception, match=r"sums in \[0\.600000, 0\.600000\]"):
    dice(p, targets, apply_softmax=False)
  error, _ = checkify.checkify(
    jax.jit(lambda x: jl.checked(jl.sigmoid_binary_cross_entropy)(x, labels))
  )(good)
  assert error.get() is None


def test_checked_accepts_a_loss_module():
  """An NNX loss module (no __name__) is checked under its class's name."""
  module = jl.nn.LearnedTemperature()
  x = np.eye(2, dtype=np.float32)
  assert_close(jl.checked(module)(x, x), module(x, x))
  with pytest.raises(
    checkify.JaxRuntimeError,
    match="LearnedTemperature: argument `image_embeddings` contains NaN",
  ):
    jl.checked(module)(np.array([[np.nan, 0.0], [0.0, 1.0]], np.float32), x)
  with pytest.raises(TypeError, match="not callable"):
    jl.checked(3.0)
