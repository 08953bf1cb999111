"""`import jaxloss as losses` replaces `optax.losses`: same names, same
signatures, same values.

Every optax name exists with optax's positional parameters and defaults,
optax's keyword-only parameters keep their defaults, and a call with optax's
defaults returns optax's output (shape and values). Each family's tests
compare the options in depth.
"""

import inspect
import warnings

import jax
import numpy as np
import optax
import pytest

import jaxloss

# optax names whose family has not landed yet, with the issue that brings it.
# This set may only shrink: the test below fails if a listed name appears.
PENDING: dict = {}

OPTAX_NAMES = sorted(
  n
  for n in dir(optax.losses)
  if not n.startswith("_") and callable(getattr(optax.losses, n))
)


def test_pending_list_is_exact():
  present = {n for n in OPTAX_NAMES if hasattr(jaxloss, n)}
  assert set(OPTAX_NAMES) - present == set(PENDING)


def _parameters(fn):
  return inspect.signature(fn).parameters.values()


@pytest.mark.parametrize("name", [n for n in OPTAX_NAMES if n not in PENDING])
def test_same_signature_as_optax(name):
  ours, theirs = getattr(jaxloss, name), getattr(optax.losses, name)
  positional = [
    (p.name, p.default)
    for p in _parameters(theirs)
    if p.kind is p.POSITIONAL_OR_KEYWORD
  ]
  ours_positional = [
    (p.name, p.default)
    for p in _parameters(ours)
    if p.kind is p.POSITIONAL_OR_KEYWORD
  ]
  assert ours_positional == positional
  ours_params = inspect.signature(ours).parameters
  for p in _parameters(theirs):
    assert p.name in ours_params, f"{name}: missing parameter {p.name}"
    assert ours_params[p.name].kind == p.kind, f"{name}: kind of {p.name}"
    assert ours_params[p.name].default == p.default, (
      f"{name}: default of {p.name}"
    )
  theirs_names = {p.name for p in _parameters(theirs)}
  extras = [p for p in _parameters(ours) if p.name not in theirs_names]
  assert all(p.kind is p.KEYWORD_ONLY for p in extras), (
    f"{name}: extras {extras}"
  )


# --------------------------------------------------------------------------- #
# values with optax's defaults: `losses.f(*args)` gives optax's output


def _inputs(name, rng):
  """Small valid positional arguments for each optax name."""
  n, c = 6, 5
  normal = lambda *s: rng.normal(size=s).astype(np.float32)
  probs = lambda *s: np.asarray(jax.nn.softmax(normal(*s)))
  classes = lambda *s, k=c: rng.integers(0, k, size=s).astype(np.int32)
  signs = lambda *s: rng.choice([-1.0, 1.0], size=s).astype(np.float32)
  binary = lambda *s: rng.integers(0, 2, size=s).astype(np.float32)
  log_probs = lambda *s: np.asarray(jax.nn.log_softmax(normal(*s)))
  images = lambda k: (
    normal(2, 4, 3, k),
    np.asarray(jax.nn.one_hot(classes(2, 4, 3, k=k), k))
    if k > 1
    else binary(2, 4, 3, 1),
  )
  ctc = (
    normal(2, 6, 4),
    np.zeros((2, 6), np.float32),
    rng.integers(1, 4, size=(2, 3)).astype(np.int32),
    np.array([[0, 0, 1], [0, 0, 0]], np.float32),
  )
  return {
    "binary_dice_loss": images(1),
    "convex_kl_divergence": (log_probs(n, c), np.abs(normal(n, c))),
    "cosine_distance": (normal(n, c), normal(n, c)),
    "cosine_similarity": (normal(n, c), normal(n, c)),
    "ctc_loss": ctc,
    "ctc_loss_with_forward_probs": ctc,
    "dice_loss": images(3),
    # Not in optax 0.2.8 (optax PR 1551); used once a release adds them.
    # Until then tests/test_semi_supervised.py compares with optax's
    # formulas written out.
    "fixmatch_loss": (normal(n, c), classes(n), normal(n, c), normal(n, c)),
    "generalized_kl_divergence": (log_probs(n, c), np.abs(normal(n, c))),
    "hinge_loss": (normal(n, c), signs(n, c)),
    "huber_loss": (2 * normal(n, c), normal(n, c)),
    "kl_divergence": (log_probs(n, c), probs(n, c)),
    "kl_divergence_with_log_targets": (log_probs(n, c), log_probs(n, c)),
    "l2_loss": (normal(n, c), normal(n, c)),
    "log_cosh": (normal(n, c), normal(n, c)),
    "mixmatch_loss": (normal(n, c), classes(n), normal(n, c), probs(n, c)),
    "multiclass_generalized_dice_loss": images(3),
    "multiclass_hinge_loss": (normal(n, c), classes(n)),
    "multiclass_perceptron_loss": (normal(n, c), classes(n)),
    "multiclass_sparsemax_loss": (normal(n, c), classes(n)),
    "ntxent": (normal(n, c), np.arange(n, dtype=np.int32) // 2),
    "perceptron_loss": (normal(n, c), signs(n, c)),
    "poly_loss_cross_entropy": (normal(n, c), probs(n, c)),
    "ranking_softmax_loss": (
      normal(n, c),
      rng.integers(0, 3, (n, c)).astype(np.float32),
    ),
    "safe_softmax_cross_entropy": (normal(n, c), probs(n, c)),
    "sigmoid_binary_cross_entropy": (normal(n, c), binary(n, c)),
    "sigmoid_focal_loss": (normal(n, c), binary(n, c)),
    "smooth_labels": (probs(n, c), 0.1),
    "softmax_cross_entropy": (normal(n, c), probs(n, c)),
    "softmax_cross_entropy_with_integer_labels": (normal(n, c), classes(n)),
    "sparsemax_loss": (normal(n, c), binary(n, c)),
    "squared_error": (normal(n, c), normal(n, c)),
    "triplet_margin_loss": (normal(n, c), normal(n, c), normal(n, c)),
  }[name]


@pytest.mark.filterwarnings("ignore:The function convex_kl_divergence")
@pytest.mark.parametrize(
  "name", [n for n in OPTAX_NAMES if n != "make_fenchel_young_loss"]
)
def test_same_values_as_optax_with_defaults(name):
  args = _inputs(name, np.random.default_rng(0))
  ours = getattr(jaxloss, name)(*args)
  with jax.numpy_rank_promotion("allow"):  # optax's generalized Dice needs it
    theirs = getattr(optax.losses, name)(*args)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
    assert np.shape(a) == np.shape(b), name
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def _warnings_of(fn, args):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with jax.numpy_rank_promotion("allow"):
      fn(*args)
  return [(w.category, str(w.message), w.filename) for w in caught]


@pytest.mark.parametrize(
  "name", [n for n in OPTAX_NAMES if n != "make_fenchel_young_loss"]
)
def test_same_warnings_as_optax(name):
  """The same warnings (category and message), attributed to the same line:
  today only ``convex_kl_divergence``'s ``DeprecationWarning``."""
  args = _inputs(name, np.random.default_rng(0))
  ours = _warnings_of(getattr(jaxloss, name), args)
  theirs = _warnings_of(getattr(optax.losses, name), args)
  assert ours == theirs
  if name == "convex_kl_divergence":
    assert [w[:2] for w in ours] == [
      (
        DeprecationWarning,
        "The function convex_kl_divergence is deprecated. Please use "
        "generalized_kl_divergence instead.",
      )
    ]
    assert ours[0][2] == __file__


def test_fenchel_young_loss_same_values_as_optax():
  rng = np.random.default_rng(1)
  scores = rng.normal(size=(6, 5)).astype(np.float32)
  targets = np.asarray(jax.nn.softmax(rng.normal(size=(6, 5))))
  logsumexp = jax.scipy.special.logsumexp
  np.testing.assert_allclose(
    jaxloss.make_fenchel_young_loss(logsumexp)(scores, targets),
    optax.losses.make_fenchel_young_loss(logsumexp)(scores, targets),
    rtol=1e-5,
    atol=1e-6,
  )


# --------------------------------------------------------------------------- #
# the label rule: where optax silently reads an out-of-range integer label
# (-1 as the last class, C as no class), jaxloss gives NaN on purpose
# (docs/names.md); valid labels keep optax's values.

LABEL_RULE_NAMES = [
  "multiclass_hinge_loss",
  "multiclass_perceptron_loss",
  "multiclass_sparsemax_loss",
  "softmax_cross_entropy_with_integer_labels",
]


@pytest.mark.parametrize("name", LABEL_RULE_NAMES)
def test_out_of_range_labels_nan_where_optax_is_silent(name):
  rng = np.random.default_rng(3)
  scores = rng.normal(size=(4, 5)).astype(np.float32)
  labels = np.array([-1, 5, 2, 0], np.int32)
  theirs = np.asarray(getattr(optax.losses, name)(scores, labels))
  ours = np.asarray(getattr(jaxloss, name)(scores, labels))
  # optax gives a finite, plausible value for label -1 (and, but for the
  # cross-entropy, for label C too): silently wrong.
  assert np.isfinite(theirs[0])
  assert np.all(np.isnan(ours[:2]))
  np.testing.assert_allclose(ours[2:], theirs[2:], rtol=1e-5, atol=1e-6)
  assert "NaN" in getattr(jaxloss, name).__doc__
