"""Value tests for jaxloss.semi_supervised.

References, written out in float64 NumPy:

* ``fixmatch_loss`` and ``mixmatch_loss``: optax's formulas from
  ``optax/losses/_semi_supervised.py`` (functions ``fixmatch_loss`` and
  ``mixmatch_loss``; optax pull request 1551, commit 33679d54). The installed
  optax 0.2.8 lacks both names, so the optax drop-in check for them is here,
  against the formulas, and against the signature optax declares.
* the others: their papers' formulas (MixMatch's Sharpen and label guess,
  UDA's masked sharpened KL and training-signal annealing, Mean Teacher's
  consistency cost as in the authors' code, Lee's Pseudo-Label with USB's
  threshold, Grandvalet and Bengio's entropy).
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss as jl
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects

RTOL, ATOL = 1e-5, 1e-6
C = 5


def _logits(seed, *shape, scale=2.0):
  rng = np.random.default_rng(seed)
  return (scale * rng.normal(size=shape)).astype(np.float32)


def _soft(seed, *shape):
  p = np.random.default_rng(seed).dirichlet(np.ones(shape[-1]), shape[:-1])
  return p.astype(np.float32)


def _int_labels(seed, n, k=C):
  return np.random.default_rng(seed).integers(0, k, n).astype(np.int32)


# --------------------------------------------------------------------------- #
# float64 NumPy references


def np_log_softmax(x):
  x = np.asarray(x, np.float64)
  shifted = x - x.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def np_softmax(x):
  return np.exp(np_log_softmax(x))


def np_cross_entropy(logits, labels):
  """Integer [B] labels or soft [B, C] labels."""
  log_p = np_log_softmax(logits)
  labels = np.asarray(labels)
  if labels.ndim == log_p.ndim - 1:
    return -np.take_along_axis(log_p, labels[:, None].astype(int), -1)[:, 0]
  return -(labels.astype(np.float64) * log_p).sum(-1)


def optax_fixmatch(labeled, labels, weak, strong, tau=0.95, lambda_u=1.0):
  """optax/losses/_semi_supervised.py, fixmatch_loss: mean labeled CE plus
  lambda_u * sum(mask * CE(strong, argmax weak)) / max(U, 1), mask where the
  weak softmax's max >= tau."""
  supervised = np_cross_entropy(labeled, labels).mean()
  p_weak = np_softmax(weak)
  mask = p_weak.max(-1) >= tau
  pseudo = p_weak.argmax(-1)
  unsup = (mask * np_cross_entropy(strong, pseudo)).sum()
  return supervised + lambda_u * unsup / max(len(weak), 1)


def optax_mixmatch(labeled, labels, unlabeled, targets, lambda_u=100.0):
  """optax/losses/_semi_supervised.py, mixmatch_loss: mean labeled CE plus
  lambda_u * mean over U of sum_C (softmax - targets)^2."""
  supervised = np_cross_entropy(labeled, labels).mean()
  brier = ((np_softmax(unlabeled) - targets) ** 2).sum(-1).mean()
  return supervised + lambda_u * brier


def np_sharpen(p, t):
  """MixMatch eq. 7: p^(1/T) / sum p^(1/T)."""
  powered = np.asarray(p, np.float64) ** (1 / t)
  return powered / powered.sum(-1, keepdims=True)


def np_kl(p, log_q):
  safe = np.where(p > 0, p, 1.0)
  return (np.where(p > 0, p * np.log(safe), 0.0) - p * log_q).sum(-1)


def np_uda(weak, strong, tau=0.4, beta=0.8):
  """UDA: 1[max softmax(w) > beta] KL(softmax(w / tau) || softmax(s))."""
  mask = np_softmax(weak).max(-1) > beta
  return mask * np_kl(np_softmax(np.asarray(weak, np.float64) / tau),
                      np_log_softmax(strong))  # fmt: skip


def np_tsa_mask(logits, labels, progress, schedule):
  """UDA's get_tsa_threshold (start 1/C, end 1) and `p_correct <= eta`."""
  alpha = {
    "linear": progress,
    "log": 1 - np.exp(-5 * progress),
    "exp": np.exp(5 * (progress - 1)),
  }[schedule]
  k = logits.shape[-1]
  eta = alpha * (1 - 1 / k) + 1 / k
  p = np_softmax(logits)
  return np.take_along_axis(p, labels[:, None], -1)[:, 0] <= eta


def np_mean_teacher(student, teacher, loss_type):
  """Tarvainen & Valpola's code: softmax_mse_loss / num_classes per example,
  or softmax_kl_loss (KL(teacher || student)) per example."""
  p, q = np_softmax(student), np_softmax(teacher)
  if loss_type == "kl":
    return np_kl(q, np_log_softmax(student))
  return ((p - q) ** 2).mean(-1)


def np_pseudo_label(logits, tau):
  """Lee (2013): CE against argmax, kept where max prob >= tau (USB)."""
  p = np_softmax(logits)
  return (p.max(-1) >= tau) * np_cross_entropy(logits, p.argmax(-1))


def np_entropy(logits):
  """Grandvalet and Bengio (2005): -sum p log p."""
  p = np_softmax(logits)
  return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0.0)).sum(-1)


# --------------------------------------------------------------------------- #
# fixmatch_loss and mixmatch_loss: optax's signatures and values

OPTAX_SIGNATURES = {
  # optax/losses/_semi_supervised.py (PR 1551): positional names, defaults.
  "fixmatch_loss": [
    ("labeled_logits", inspect.Parameter.empty),
    ("labeled_labels", inspect.Parameter.empty),
    ("unlabeled_weak_logits", inspect.Parameter.empty),
    ("unlabeled_strong_logits", inspect.Parameter.empty),
    ("confidence_threshold", 0.95),
    ("lambda_u", 1.0),
  ],
  "mixmatch_loss": [
    ("labeled_logits", inspect.Parameter.empty),
    ("labeled_labels", inspect.Parameter.empty),
    ("unlabeled_logits", inspect.Parameter.empty),
    ("unlabeled_targets", inspect.Parameter.empty),
    ("lambda_u", 100.0),
  ],
}


@pytest.mark.parametrize("name", sorted(OPTAX_SIGNATURES))
def test_optax_signature(name):
  parameters = inspect.signature(getattr(jl, name)).parameters.values()
  positional = [
    (p.name, p.default) for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD
  ]
  assert positional == OPTAX_SIGNATURES[name]
  extras = [p for p in parameters if p.kind is not p.POSITIONAL_OR_KEYWORD]
  assert all(p.kind is p.KEYWORD_ONLY for p in extras)


def test_installed_optax_lacks_the_two_names():
  """The reason these are compared with optax's formulas, not optax: when a
  release adds them, tests/test_optax_dropin.py covers them (its pending
  list is exact) and this test says to drop the written-out copies."""
  assert not hasattr(optax.losses, "fixmatch_loss")
  assert not hasattr(optax.losses, "mixmatch_loss")


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize(
  "tau, lambda_u", [(0.95, 1.0), (0.5, 0.3), (0.0, 1.0), (1.0, 2.0)]
)
@pytest.mark.parametrize("u", [8, 0])
def test_fixmatch_matches_optax_formula(soft, tau, lambda_u, u):
  labeled = _logits(0, 4, C)
  labels = _soft(1, 4, C) if soft else _int_labels(1, 4)
  weak, strong = _logits(2, u, C, scale=4.0), _logits(3, u, C)
  expected = optax_fixmatch(labeled, labels, weak, strong, tau, lambda_u)
  assert_close(
    jl.fixmatch_loss(labeled, labels, weak, strong, tau, lambda_u),
    expected,
    RTOL,
    ATOL,
  )
  if tau == 0.95 and lambda_u == 1.0:  # optax's defaults
    assert_close(jl.fixmatch_loss(labeled, labels, weak, strong), expected)


def test_fixmatch_threshold_bounds():
  labeled, labels = _logits(0, 4, C), _int_labels(1, 4)
  strong = _logits(3, 6, C)
  weak = _logits(2, 6, C)  # no probability reaches exactly 1
  supervised = np_cross_entropy(labeled, labels).mean()
  assert_close(jl.fixmatch_loss(labeled, labels, weak, strong, 1.0), supervised)
  everything = (
    supervised + np_cross_entropy(strong, np_softmax(weak).argmax(-1)).mean()
  )
  assert_close(jl.fixmatch_loss(labeled, labels, weak, strong, 0.0), everything)
  # A saturated weak prediction (softmax max exactly 1.0) passes tau = 1.
  saturated = weak.copy()
  saturated[0, 2] = 200.0
  kept = np_cross_entropy(strong[:1], np.array([2]))[0] / 6
  assert_close(
    jl.fixmatch_loss(labeled, labels, saturated, strong, 1.0),
    supervised + kept,
  )


@pytest.mark.parametrize("soft", [False, True])
def test_fixmatch_nothing_confident_is_the_supervised_term(soft):
  labeled = _logits(0, 4, C)
  labels = _soft(1, 4, C) if soft else _int_labels(1, 4)
  weak = np.zeros((6, C), np.float32)  # max probability 1/C
  strong = _logits(3, 6, C, scale=50.0)
  value = jl.fixmatch_loss(labeled, labels, weak, strong)
  assert_close(value, np_cross_entropy(labeled, labels).mean())
  grads = jax.grad(jl.fixmatch_loss, argnums=(0, 2, 3))(
    labeled, labels, weak, strong
  )
  assert all(np.all(np.isfinite(g)) for g in grads)
  assert np.all(np.asarray(grads[2]) == 0) and np.all(np.asarray(grads[1]) == 0)


def test_fixmatch_gradient_reaches_only_the_strong_logits_and_labeled():
  labeled, labels = _logits(0, 4, C), _int_labels(1, 4)
  weak, strong = _logits(2, 6, C, scale=3.0), _logits(3, 6, C)
  g_labeled, g_weak, g_strong = jax.grad(jl.fixmatch_loss, argnums=(0, 2, 3))(
    labeled, labels, weak, strong, 0.9
  )
  assert np.all(np.asarray(g_weak) == 0)
  mask = np_softmax(weak).max(-1) >= 0.9
  assert mask.any() and not mask.all()
  # d CE / d logits = softmax - onehot, scaled by 1/U where kept.
  onehot = np.eye(C)[np_softmax(weak).argmax(-1)]
  expected = mask[:, None] * (np_softmax(strong) - onehot) / 6
  assert_close(g_strong, expected, RTOL, ATOL)
  assert_close(
    g_labeled, (np_softmax(labeled) - np.eye(C)[labels]) / 4, RTOL, ATOL
  )


def test_fixmatch_masks_equal_slicing():
  labeled, labels = _logits(0, 5, C), _int_labels(1, 5)
  weak, strong = _logits(2, 7, C, scale=4.0), _logits(3, 7, C)
  keep_l = np.array([1, 0, 1, 1, 0], bool)
  keep_u = np.array([1, 1, 0, 1, 0, 1, 1], bool)
  assert_close(
    jl.fixmatch_loss(
      labeled,
      labels,
      weak,
      strong,
      0.6,
      labeled_where=keep_l,
      unlabeled_where=keep_u,
    ),
    optax_fixmatch(
      labeled[keep_l], labels[keep_l], weak[keep_u], strong[keep_u], 0.6
    ),
  )
  nothing = jl.fixmatch_loss(
    labeled,
    labels,
    weak,
    strong,
    labeled_where=np.zeros(5, bool),
    unlabeled_where=np.zeros(7, bool),
  )
  assert float(nothing) == 0.0


def test_fixmatch_label_smoothing():
  labeled, labels = _logits(0, 4, C), _int_labels(1, 4)
  weak, strong = _logits(2, 6, C), _logits(3, 6, C)
  smooth = 0.9 * np.eye(C)[labels] + 0.1 / C
  assert_close(
    jl.fixmatch_loss(labeled, labels, weak, strong, label_smoothing=0.1),
    optax_fixmatch(labeled, smooth, weak, strong),
  )


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("lambda_u", [100.0, 0.5])
def test_mixmatch_matches_optax_formula(soft, lambda_u):
  labeled = _logits(4, 4, C)
  labels = _soft(5, 4, C) if soft else _int_labels(5, 4)
  unlabeled, targets = _logits(6, 8, C), _soft(7, 8, C)
  expected = optax_mixmatch(labeled, labels, unlabeled, targets, lambda_u)
  assert_close(
    jl.mixmatch_loss(labeled, labels, unlabeled, targets, lambda_u),
    expected,
  )


def test_mixmatch_targets_carry_no_gradient_and_masks_slice():
  labeled, labels = _logits(4, 4, C), _int_labels(5, 4)
  unlabeled, targets = _logits(6, 8, C), _soft(7, 8, C)
  grad = jax.grad(jl.mixmatch_loss, argnums=3)(
    labeled, labels, unlabeled, targets
  )
  assert np.all(np.asarray(grad) == 0)
  keep = np.array([1, 0, 1, 1, 1, 0, 0, 1], bool)
  assert_close(
    jl.mixmatch_loss(labeled, labels, unlabeled, targets, unlabeled_where=keep),
    optax_mixmatch(labeled, labels, unlabeled[keep], targets[keep]),
  )


def test_bfloat16_is_computed_in_float32():
  labeled, labels = _logits(0, 4, C), _int_labels(1, 4)
  weak, strong = _logits(2, 6, C, scale=4.0), _logits(3, 6, C)
  half = [jnp.asarray(x, jnp.bfloat16) for x in (labeled, weak, strong)]
  rounded = [np.asarray(x, np.float32) for x in half]
  out = jl.fixmatch_loss(half[0], labels, half[1], half[2], 0.5)
  assert out.dtype == jnp.float32
  assert_close(
    out,
    optax_fixmatch(rounded[0], labels, rounded[1], rounded[2], 0.5),
  )
  targets = _soft(7, 6, C)
  out = jl.mixmatch_loss(half[0], labels, half[2], targets)
  assert out.dtype == jnp.float32
  assert_close(out, optax_mixmatch(rounded[0], labels, rounded[2], targets))


@pytest.mark.parametrize(
  "fn, args, error, arg",
  [
    (
      jl.fixmatch_loss,
      (_logits(0, 4, C), _int_labels(1, 3), _logits(2, 6, C), _logits(3, 6, C)),
      ValueError,
      "labeled_labels",
    ),
    (
      jl.fixmatch_loss,
      (_logits(0, 4, C), _int_labels(1, 4), _logits(2, 6, C), _logits(3, 5, C)),
      ValueError,
      "unlabeled_strong_logits",
    ),
    (
      jl.fixmatch_loss,
      (_logits(0, 4, 3), _int_labels(1, 4, 3), _logits(2, 6, C),
       _logits(3, 6, C)),
      ValueError,
      "unlabeled_weak_logits",
    ),
    (
      jl.fixmatch_loss,
      (_logits(0, 4, C), _soft(1, 4, C), _logits(2, 6, C).astype(np.int32),
       _logits(3, 6, C)),
      TypeError,
      "unlabeled_weak_logits",
    ),
    (
      jl.fixmatch_loss,
      (_logits(0, 4, C), _soft(1, 4, C).astype(np.int32)[:, 0].astype(float),
       _logits(2, 6, C), _logits(3, 6, C)),
      TypeError,
      "labeled_labels",
    ),
    (
      jl.mixmatch_loss,
      (_logits(0, 4, C), _int_labels(1, 4), _logits(2, 6, C),
       _int_labels(3, 6)[:, None].repeat(C, 1)),
      TypeError,
      "unlabeled_targets",
    ),
    (
      jl.mixmatch_loss,
      (_logits(0, 4, C), _int_labels(1, 4), _logits(2, 6, C), _soft(3, 5, C)),
      ValueError,
      "unlabeled_targets",
    ),
  ],
)  # fmt: skip
def test_errors_name_the_loss_and_argument(fn, args, error, arg):
  with pytest.raises(error, match=rf"^{fn.__name__}: .*`{arg}`"):
    fn(*args)


@pytest.mark.parametrize(
  "kwargs, what",
  [
    ({"confidence_threshold": 1.5}, "confidence_threshold"),
    ({"lambda_u": -1.0}, "lambda_u"),
    ({"labeled_where": np.ones(3, bool)}, "labeled_where"),
  ],
)
def test_fixmatch_rejects_bad_options(kwargs, what):
  args = (_logits(0, 4, C), _int_labels(1, 4), _logits(2, 6, C))
  with pytest.raises(ValueError, match=f"fixmatch_loss: .*{what}"):
    jl.fixmatch_loss(*args, _logits(3, 6, C), **kwargs)


def test_checked_rules():
  labeled, weak, strong = _logits(0, 4, C), _logits(2, 6, C), _logits(3, 6, C)
  checked = jl.checked(jl.fixmatch_loss)
  assert np.isfinite(checked(labeled, _int_labels(1, 4), weak, strong))
  checked_rejects(
    jl.fixmatch_loss,
    labeled,
    np.array([0, 1, C, 2]),
    weak,
    strong,
    arg="labeled_labels",
    what="must hold class indices",
  )
  # A label of an example that labeled_where drops may hold anything.
  assert np.isfinite(
    checked(
      labeled,
      np.array([0, 1, C, 2]),
      weak,
      strong,
      labeled_where=np.array([1, 1, 0, 1], bool),
    )
  )
  checked_rejects(
    jl.fixmatch_loss,
    labeled,
    _soft(1, 4, C) * 2,
    weak,
    strong,
    arg="labeled_labels",
    what="must hold soft labels",
  )
  checked_rejects(
    jl.mixmatch_loss,
    labeled,
    _int_labels(1, 4),
    strong,
    _soft(3, 6, C) - 0.5,
    arg="unlabeled_targets",
  )
  checked_rejects(jl.sharpen, np.array([0.5, 1.5]), arg="probabilities")


# --------------------------------------------------------------------------- #
# sharpen and guess_labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 0.1, 2.0])
def test_sharpen(temperature):
  p = _soft(8, 6, C)
  p[0, 1] = 0.0  # a zero stays zero
  p = p / p.sum(-1, keepdims=True)
  got = jl.sharpen(p, temperature)
  assert_close(got, np_sharpen(p, temperature), RTOL, ATOL)
  assert float(got[0, 1]) == 0.0
  grad = jax.grad(lambda x: jnp.sum(jl.sharpen(x, temperature) ** 2))(p)
  assert np.all(np.isfinite(grad))


def test_sharpen_axis_and_zero_row():
  p = _soft(9, 3, C)
  assert_close(jl.sharpen(p.T, 0.5, axis=0), np_sharpen(p, 0.5).T)
  assert np.all(np.asarray(jl.sharpen(np.zeros((2, C), np.float32))) == 0)
  with pytest.raises(ValueError, match="sharpen: `temperature`"):
    jl.sharpen(p, 0.0)


def test_guess_labels():
  logits = _logits(10, 3, 6, C)  # K = 3 augmentations of 6 examples
  expected = np_sharpen(np_softmax(logits).mean(0), 0.5)
  assert_close(jl.guess_labels(logits), expected, RTOL, ATOL)
  grad = jax.grad(lambda x: jnp.sum(jl.guess_labels(x)[:, 0]))(logits)
  assert np.all(np.asarray(grad) == 0)
  with pytest.raises(ValueError, match="guess_labels: argument `logits`"):
    jl.guess_labels(logits[0])


# --------------------------------------------------------------------------- #
# per-example losses


@pytest.mark.parametrize(
  "tau, beta", [(0.4, 0.8), (1.0, 0.0), (0.7, 0.5), (0.4, 1.0)]
)
def test_uda_consistency(tau, beta):
  weak, strong = _logits(11, 8, C, scale=3.0), _logits(12, 8, C)
  expected = np_uda(weak, strong, tau, beta)
  got = jl.uda_consistency_loss(
    weak, strong, temperature=tau, confidence_threshold=beta
  )
  assert_close(got, expected, RTOL, ATOL)
  assert_close(
    jl.uda_consistency_loss(
      weak,
      strong,
      temperature=tau,
      confidence_threshold=beta,
      reduction="mean",
    ),
    expected.mean(),  # UDA: the mean over the whole unlabeled batch
    RTOL,
    ATOL,
  )
  if (tau, beta) == (0.4, 0.8):
    assert 0 < (expected > 0).sum() < 8
    assert_close(jl.uda_consistency_loss(weak, strong), expected, RTOL, ATOL)
  grad = jax.grad(
    lambda w: jnp.sum(jl.uda_consistency_loss(w, strong)), argnums=0
  )(weak)
  assert np.all(np.asarray(grad) == 0)


def test_uda_threshold_is_strict():
  weak = np.zeros((2, 2), np.float32)  # max probability exactly 0.5
  strong = _logits(13, 2, 2)
  values = jl.uda_consistency_loss(weak, strong, confidence_threshold=0.5)
  assert np.all(np.asarray(values) == 0)


@pytest.mark.parametrize("schedule", ["linear", "log", "exp"])
@pytest.mark.parametrize("progress", [0.0, 0.3, 0.8, 1.0])
def test_training_signal_annealing_mask(schedule, progress):
  logits, labels = _logits(14, 32, C, scale=3.0), _int_labels(15, 32)
  got = jl.training_signal_annealing_mask(
    logits, labels, progress, schedule=schedule
  )
  expected = np_tsa_mask(logits, labels, progress, schedule)
  np.testing.assert_array_equal(np.asarray(got), expected)
  if progress == 1.0 and schedule != "log":
    assert np.all(np.asarray(got))  # threshold 1: every example trains
  with pytest.raises(ValueError, match="training_signal_annealing_mask"):
    jl.training_signal_annealing_mask(logits, labels, 0.5, schedule="cosine")


@pytest.mark.parametrize("loss_type", ["squared_error", "kl"])
def test_mean_teacher(loss_type):
  student, teacher = _logits(16, 8, C), _logits(17, 8, C)
  got = jl.mean_teacher_consistency_loss(student, teacher, loss_type=loss_type)
  assert_close(got, np_mean_teacher(student, teacher, loss_type), RTOL, ATOL)
  grad = jax.grad(
    lambda t: jnp.sum(
      jl.mean_teacher_consistency_loss(student, t, loss_type=loss_type)
    )
  )(teacher)
  assert np.all(np.asarray(grad) == 0)
  with pytest.raises(ValueError, match="loss_type"):
    jl.mean_teacher_consistency_loss(student, teacher, loss_type="mse")


@pytest.mark.parametrize("tau", [0.95, 0.6, 0.0, 1.0])
def test_pseudo_label(tau):
  logits = _logits(18, 16, C, scale=3.0)
  expected = np_pseudo_label(logits, tau)
  got = jl.pseudo_label_loss(logits, confidence_threshold=tau)
  assert_close(got, expected, RTOL, ATOL)
  if tau == 0.6:
    assert 0 < (expected > 0).sum() < 16
  if tau == 1.0:
    assert np.all(np.asarray(got) == 0)


def test_entropy_minimization():
  logits = _logits(19, 8, C)
  logits[0] = [1e4, -1e4, 0.0, 0.0, 0.0]  # saturated: entropy 0
  got = jl.entropy_minimization_loss(logits)
  assert_close(got, np_entropy(logits), RTOL, ATOL)
  assert float(got[0]) == 0.0
  uniform = jl.entropy_minimization_loss(np.zeros((1, C), np.float32))
  assert_close(uniform, [np.log(C)])
