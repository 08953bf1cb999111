"""Value tests for jaxloss.segmentation.

References: optax 0.2.8 itself for its three names (optax's ``reduction``
reduces the class axis: it is ``class_reduction`` here, with
``reduction="none"``); float64 NumPy formulas written from the papers for the
rest (Milletari et al. 2016 for V-Net's squared Dice, Rahman and Wang 2016 for
the soft Jaccard, Salehi et al. 2017 for Tversky, Abraham and Khan 2019 for
focal Tversky, Taghanaki et al. 2019 for combo), and the authors' PyTorch
code of Lovász-Softmax (bermanmaxim/LovaszSoftmax, ``lovasz_losses.py``)
written out in NumPy.
"""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss as jl
from jaxloss.testing import assert_close
from tests.assertions import checked_rejects

RTOL, ATOL = 1e-5, 1e-6
F32, F64 = np.float32, np.float64
C = 3


def _images(seed, *shape, classes=C, scale=2.0):
  """Logits ``[*shape, classes]`` and one-hot targets; also the labels."""
  rng = np.random.default_rng(seed)
  logits = (scale * rng.normal(size=shape + (classes,))).astype(F32)
  labels = rng.integers(0, classes, shape)
  return logits, np.eye(classes, dtype=F32)[labels], labels


def _optax(name, *args, **kwargs):
  """optax.losses.<name> (which broadcasts class weights by rank promotion)."""
  with jax.numpy_rank_promotion("allow"):
    return getattr(optax.losses, name)(*args, **kwargs)


def _check64(fn, args, expected, **kwargs):
  """float64 under x64 within 1e-10 of the float64 reference."""
  with jax.enable_x64(True):
    out = fn(*[np.asarray(a, F64) for a in args], **kwargs)
    assert out.dtype == jnp.float64
    assert_close(out, expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- #
# float64 NumPy references, written from the papers


def np_probs(x, apply_softmax=True):
  x = np.asarray(x, F64)
  if not apply_softmax:
    return x
  if x.shape[-1] == 1:
    return 1 / (1 + np.exp(-x))
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def np_sums(p, t, mask=None, squared=False):
  """Per image and class, over the flattened pixels of ``[B, N, C]``:
  ``Σ p t``, ``Σ p`` (or ``Σ p²``), ``Σ t`` (or ``Σ t²``); masked pixels out."""
  p, t = np.asarray(p, F64), np.asarray(t, F64)
  m = np.ones(p.shape[:2]) if mask is None else np.asarray(mask, F64)
  m = m[..., None]
  power = 2 if squared else 1
  return ((m * p * t).sum(1), (m * p**power).sum(1), (m * t**power).sum(1))


def milletari_dice(p, t, s, squared=False, mask=None):
  """1 − (2 Σpt + 2s) / (Σp + Σt + 2s); V-Net: Σp² + Σt² (optax's
  smoothing, 2s, in both)."""
  i, ps, ts = np_sums(p, t, mask, squared)
  return 1 - (2 * i + 2 * s) / (ps + ts + 2 * s)


def rahman_jaccard(p, t, s, squared=False, mask=None):
  """1 − (Σpt + s) / (Σp + Σt − Σpt + s)."""
  i, ps, ts = np_sums(p, t, mask, squared)
  return 1 - (i + s) / (ps + ts - i + s)


def salehi_tversky(p, t, a, b, s):
  """1 − (Σpt + s) / (Σpt + a Σp(1−t) + b Σ(1−p)t + s)."""
  p, t = np.asarray(p, F64), np.asarray(t, F64)
  i = (p * t).sum(1)
  fp, fn = (p * (1 - t)).sum(1), ((1 - p) * t).sum(1)
  return 1 - (i + s) / (i + a * fp + b * fn + s)


def taghanaki_combo(x, t, alpha, beta, s):
  """Per class: α L_mbce − (1 − α) DSC, L_mbce = −mean_i(β t log p +
  (1 − β)(1 − t) log(1 − p)); the paper's value, per image and class."""
  p, t = np_probs(x), np.asarray(t, F64)
  bce = -(beta * t * np.log(p) + (1 - beta) * (1 - t) * np.log(1 - p))
  dsc = 1 - milletari_dice(p, t, s)
  return alpha * bce.mean(1) - (1 - alpha) * dsc


def berman_lovasz_grad(gt_sorted):
  """lovasz_grad: Jaccard loss after each prefix, differenced."""
  gts = gt_sorted.sum()
  intersection = gts - np.cumsum(gt_sorted)
  union = gts + np.cumsum(1 - gt_sorted)
  jaccard = 1 - intersection / union
  jaccard[1:] = jaccard[1:] - jaccard[:-1]
  return jaccard


def berman_lovasz_flat(
  probas, labels, classes="present", class_weights=None, skip=()
):
  """lovasz_softmax_flat: probas [P, C], labels [P]; mean over the counted
  classes (0 if none) of the errors sorted decreasingly · lovasz_grad."""
  losses = []
  for c in range(probas.shape[1]):
    if c in skip:
      continue
    fg = (labels == c).astype(F64)
    if classes == "present" and fg.sum() == 0:
      continue
    errors = np.abs(fg - probas[:, c])
    order = np.argsort(-errors, kind="stable")
    w = 1.0 if class_weights is None else class_weights[c]
    losses.append(w * errors[order] @ berman_lovasz_grad(fg[order]))
  return np.mean(losses) if losses else 0.0


def berman_lovasz(
  probas, labels, per_image, classes="present", valid=None, **kwargs
):
  """lovasz_softmax on [B, N, C] probabilities with integer labels [B, N];
  ``valid`` plays the reference's ``ignore`` label."""
  probas = np.asarray(probas, F64)
  valid = np.ones(labels.shape, bool) if valid is None else valid
  if per_image:
    return np.array(
      [
        berman_lovasz_flat(p[v], l[v], classes, **kwargs)
        for p, l, v in zip(probas, labels, valid)
      ]
    )
  return berman_lovasz_flat(probas[valid], labels[valid], classes, **kwargs)


# --------------------------------------------------------------------------- #
# optax drop-ins

DICE_OPTIONS = [
  {},
  {"smooth": 0.3},
  {"alpha": 0.2, "beta": 0.9},
  {"class_weights": np.array([1.0, 2.0, 0.5], F32)},
  {"ignore_background": True},
  {"axis": (1,)},
  {"axis": (0, 1, 2)},
  {"apply_softmax": False},
]


@pytest.mark.parametrize("kwargs", DICE_OPTIONS, ids=lambda k: ",".join(k))
def test_dice_loss_matches_optax(kwargs):
  x, t, _ = _images(0, 4, 3, 3)
  if kwargs.get("apply_softmax") is False:
    x = np.asarray(jax.nn.softmax(x), F32)
  for optax_reduction in ("mean", "sum", "none"):
    assert_close(
      jl.dice_loss(x, t, reduction=optax_reduction, **kwargs),
      _optax("dice_loss", x, t, reduction=optax_reduction, **kwargs),
      RTOL,
      ATOL,
    )
  assert_close(
    jl.dice_loss(x, t, **kwargs),
    _optax("dice_loss", x, t, **kwargs),
    RTOL,
    ATOL,
  )
  # batch_reduction is the jaxloss reduction over the images.
  assert_close(
    jl.dice_loss(x, t, batch_reduction="mean", **kwargs),
    jnp.mean(_optax("dice_loss", x, t, **kwargs)),
    RTOL,
    ATOL,
  )


def test_dice_loss_layouts_match_optax():
  """Rank-3 inputs, one channel (sigmoid), and an input one rank short."""
  x, t, _ = _images(1, 5, 7)
  assert_close(jl.dice_loss(x, t), _optax("dice_loss", x, t), RTOL, ATOL)
  xb, tb = x[..., :1], t[..., :1]
  assert_close(jl.dice_loss(xb, tb), _optax("dice_loss", xb, tb), RTOL, ATOL)
  assert_close(
    jl.dice_loss(xb[..., 0], tb),
    _optax("dice_loss", xb[..., 0], tb),
    RTOL,
    ATOL,
  )


@pytest.mark.parametrize("shape", [(4, 3, 3), (4, 3, 3, 1), (5, 6)])
def test_binary_dice_loss_matches_optax(shape):
  rng = np.random.default_rng(2)
  x = (2 * rng.normal(size=shape)).astype(F32)
  t = (rng.random(shape) < 0.5).astype(F32)
  assert_close(
    jl.binary_dice_loss(x, t), _optax("binary_dice_loss", x, t), RTOL, ATOL
  )
  assert_close(
    jl.binary_dice_loss(x, t, smooth=0.5),
    _optax("binary_dice_loss", x, t, smooth=0.5),
    RTOL,
    ATOL,
  )


def test_binary_dice_loss_probabilities():
  """optax raises for apply_sigmoid=False (it wants the single channel to
  sum to 1); the value is Milletari's Dice on the probabilities."""
  rng = np.random.default_rng(3)
  p = rng.uniform(size=(4, 9)).astype(F32)
  t = (rng.random((4, 9)) < 0.5).astype(F32)
  expected = milletari_dice(p[..., None], t[..., None], 1.0)[:, 0]
  assert_close(
    jl.binary_dice_loss(p, t, apply_sigmoid=False), expected, RTOL, ATOL
  )


# --------------------------------------------------------------------------- #
# apply_softmax=False: probabilities that do not sum to 1 (optax's ValueError)

DISTRIBUTION_ERROR = (
  r"argument `predictions`: when apply_softmax=False, predictions must be "
  r"valid probability distributions that sum to 1 along the class axis"
)
DICE_NAMES = ["dice_loss", "multiclass_generalized_dice_loss"]


def _distributions(seed, *shape, classes=C):
  x, t, _ = _images(seed, *shape, classes=classes)
  return np.array(jax.nn.softmax(x), F32), t


def _optax_raises(name, p, t):
  try:
    _optax(name, p, t, apply_softmax=False)
  except ValueError as error:
    assert "valid probability distributions" in str(error)
    return True
  return False


@pytest.mark.parametrize("name", DICE_NAMES)
@pytest.mark.parametrize(
  "offset, raises",
  # optax's test is jnp.allclose(sums, 1, rtol=1e-5): |sum - 1| <= 1.001e-5.
  [
    (0.0, False),
    (5e-6, False),
    (-5e-6, False),
    (3e-5, True),
    (-3e-5, True),
    (0.5, True),
    (np.nan, True),
  ],
)
def test_probabilities_must_sum_to_one_as_in_optax(name, offset, raises):
  p, t = _distributions(30, 2, 4)
  p[1, 2, 0] += offset  # one pixel of image 1
  assert _optax_raises(name, p, t) is raises  # the reference
  fn = getattr(jl, name)
  if raises:
    with pytest.raises(ValueError, match=rf"^{name}: {DISTRIBUTION_ERROR}"):
      fn(p, t, apply_softmax=False)
  else:
    assert_close(
      fn(p, t, apply_softmax=False),
      _optax(name, p, t, apply_softmax=False),
      RTOL,
      ATOL,
    )


def test_sum_error_reports_the_range_of_the_sums():
  p, t = _distributions(31, 2, 4)
  p[0, 1] *= 0.25
  p[1, 3] *= 2.0
  with pytest.raises(
    ValueError, match=r"Found sum range: \[0\.250000, 2\.000000\]"
  ):
    jl.dice_loss(p, t, apply_softmax=False)


def test_single_channel_probabilities_are_not_checked():
  """optax 0.2.8 checks one channel too (it raises unless every probability
  is 1, so its binary_dice_loss(apply_sigmoid=False) always fails); jaxloss
  checks only several classes."""
  rng = np.random.default_rng(32)
  p = rng.uniform(0.1, 0.9, size=(2, 4, 1)).astype(F32)
  t = (rng.random((2, 4, 1)) < 0.5).astype(F32)
  assert _optax_raises("dice_loss", p, t)
  expected = milletari_dice(p, t, 1.0)[:, 0]
  assert_close(jl.dice_loss(p, t, apply_softmax=False), expected, RTOL, ATOL)
  assert_close(
    jl.binary_dice_loss(p[..., 0], t[..., 0], apply_sigmoid=False),
    expected,
    RTOL,
    ATOL,
  )
  assert_close(
    jl.checked(jl.dice_loss)(p, t, apply_softmax=False), expected, RTOL, ATOL
  )


@pytest.mark.parametrize("name", DICE_NAMES)
def test_traced_probabilities_are_not_checked_but_checked_reports_them(name):
  """Under jit, vmap and grad the values are traced: no error (optax cannot
  trace its check at all); jaxloss.checked reports them."""
  p, t = _distributions(33, 2, 4)
  p[1, 2] *= 1.5
  fn = getattr(jl, name)
  expected = milletari_dice(p, t, 1.0).mean(-1)  # optax, unchecked
  if name == "dice_loss":
    assert_close(
      jax.jit(lambda p: fn(p, t, apply_softmax=False))(p), expected, RTOL, ATOL
    )
    assert_close(
      jax.vmap(lambda p, t: fn(p[None], t[None], apply_softmax=False)[0])(p, t),
      expected,
      RTOL,
      ATOL,
    )
  grad = jax.grad(lambda p: jnp.sum(fn(p, t, apply_softmax=False)))(p)
  assert np.all(np.isfinite(grad))
  checked_rejects(
    fn,
    p,
    t,
    arg="predictions",
    what=r"must lie in \[0, 1\] and sum to 1 along the class axis .*"
    r"sums in \[1\.000000, 1\.500000\]",
    apply_softmax=False,
  )
  with pytest.raises(ValueError, match=DISTRIBUTION_ERROR):
    fn(p, t, apply_softmax=False)  # eager: concrete values


def test_masked_pixels_need_not_sum_to_one():
  """Pixels that ``where`` leaves out take no part in the loss, so padding
  may hold anything (zeros here), eagerly and under ``checked``."""
  p, t = _distributions(34, 2, 4)
  p[0, 3] = 0.0
  where = np.ones((2, 4), bool)
  where[0, 3] = False
  expected = np.concatenate(  # image 0 without its pixel 3, image 1 whole
    [
      milletari_dice(p[:1, :3], t[:1, :3], 1.0).mean(-1),
      milletari_dice(p[1:], t[1:], 1.0).mean(-1),
    ]
  )
  assert_close(
    jl.dice_loss(p, t, apply_softmax=False, where=where), expected, RTOL, ATOL
  )
  assert_close(
    jl.checked(jl.dice_loss)(p, t, apply_softmax=False, where=where),
    expected,
    RTOL,
    ATOL,
  )
  with pytest.raises(ValueError, match=DISTRIBUTION_ERROR):
    jl.dice_loss(p, t, apply_softmax=False)
  dropped = np.array([False, True])  # per image: image 0 dropped
  assert_close(
    jl.dice_loss(p, t, apply_softmax=False, where=dropped)[1],
    expected[1],
    RTOL,
    ATOL,
  )


def test_bfloat16_probabilities_within_their_rounding_pass():
  """A softmax rounded to bfloat16 sums to 1 only within bfloat16's
  rounding (up to 2^-8 here): the tolerance is the input's epsilon."""
  p, t = _distributions(35, 2, 16, classes=7)
  p16 = jnp.asarray(p, jnp.bfloat16)
  sums = np.asarray(p16, F32).sum(-1)
  assert np.max(np.abs(sums - 1)) > 1e-5  # optax's tolerance would reject
  assert_close(
    jl.dice_loss(p16, t, apply_softmax=False),
    jl.dice_loss(
      np.asarray(p16, F32) / sums[..., None], t, apply_softmax=False
    ),
    1e-2,
    1e-3,
  )
  with pytest.raises(ValueError, match=DISTRIBUTION_ERROR):
    jl.dice_loss(jnp.asarray(p * 1.02, jnp.bfloat16), t, apply_softmax=False)


def test_losses_without_an_optax_name_take_multilabel_probabilities():
  """Sigmoid outputs of overlapping classes (multi-label) need not sum to 1:
  only the optax names keep optax's check."""
  rng = np.random.default_rng(36)
  p = rng.uniform(size=(2, 4, C)).astype(F32)
  t = (rng.random((2, 4, C)) < 0.5).astype(F32)
  for fn in (jl.jaccard_loss, jl.tversky_loss, jl.focal_tversky_loss):
    assert np.all(np.isfinite(fn(p, t, apply_softmax=False)))
    assert np.all(np.isfinite(jl.checked(fn)(p, t, apply_softmax=False)))


@pytest.mark.parametrize(
  "kwargs",
  [{}, {"smooth": 0.5}, {"ignore_background": True}, {"apply_softmax": False}],
  ids=lambda k: ",".join(k),
)
def test_generalized_dice_matches_optax(kwargs):
  x, t, _ = _images(4, 4, 3, 3)
  t[0, ..., 2] = 0  # a class rare in the batch gets a large weight
  t[0, ..., 0] = 1
  if kwargs.get("apply_softmax") is False:
    x = np.asarray(jax.nn.softmax(x), F32)
  expected = _optax("multiclass_generalized_dice_loss", x, t, **kwargs)
  assert_close(
    jl.multiclass_generalized_dice_loss(x, t, **kwargs), expected, RTOL, ATOL
  )
  assert_close(
    jnp.mean(
      jl.multiclass_generalized_dice_loss(x, t, reduction="none", **kwargs)
    ),
    expected,
    RTOL,
    ATOL,
  )


def test_generalized_dice_where_counts_only_unmasked_pixels():
  """Masked pixels leave the class frequencies and the sums: the same as
  optax on the valid pixels alone (images of one valid row each)."""
  x, t, _ = _images(5, 3, 4, 2)
  where = np.zeros((3, 4, 2), bool)
  where[:, 1] = True
  ours = jl.multiclass_generalized_dice_loss(x, t, where=where)
  assert_close(
    ours,
    _optax("multiclass_generalized_dice_loss", x[:, 1:2], t[:, 1:2]),
    RTOL,
    ATOL,
  )


@hypothesis.settings(max_examples=4, deadline=None, derandomize=True)
@hypothesis.given(
  st.integers(1, 3),
  st.integers(1, 4),
  st.integers(1, 4),
  st.integers(2, 4),
  st.floats(0.0, 2.0),
)
def test_dice_loss_matches_optax_hypothesis(batch, h, w, classes, smooth):
  x, t, _ = _images(batch * 100 + h * 10 + w, batch, h, w, classes=classes)
  assert_close(
    jl.dice_loss(x, t, smooth=smooth),
    _optax("dice_loss", x, t, smooth=smooth),
    rtol=2e-5,
    atol=ATOL,
  )


# --------------------------------------------------------------------------- #
# the other losses, against the papers' formulas


def test_squared_denominator_is_vnet_dice():
  x, t, _ = _images(6, 4, 9)
  p = np_probs(x)
  expected = milletari_dice(p, t, 1.0, squared=True)
  assert_close(
    jl.dice_loss(x, t, squared_denominator=True, reduction="none"),
    expected,
    RTOL,
    ATOL,
  )
  assert_close(
    jl.binary_dice_loss(x[..., 0], t[..., 0], squared_denominator=True),
    milletari_dice(np_probs(x[..., :1]), t[..., :1], 1.0, squared=True)[:, 0],
    RTOL,
    ATOL,
  )
  _check64(
    jl.dice_loss, (x, t), expected, squared_denominator=True, reduction="none"
  )


@pytest.mark.parametrize("squared", [False, True])
def test_jaccard_loss(squared):
  x, t, _ = _images(7, 4, 9)
  expected = rahman_jaccard(np_probs(x), t, 0.5, squared).mean(-1)
  assert_close(
    jl.jaccard_loss(x, t, smooth=0.5, squared_denominator=squared),
    expected,
    RTOL,
    ATOL,
  )


def test_tversky_loss():
  x, t, _ = _images(8, 4, 9)
  expected = salehi_tversky(np_probs(x), t, 0.3, 0.7, 1.0)
  assert_close(
    jl.tversky_loss(x, t, class_reduction="none"), expected, RTOL, ATOL
  )
  assert_close(
    jl.tversky_loss(x, t, alpha=0.5, beta=0.5),
    milletari_dice(np_probs(x), t, 1.0).mean(-1),
    RTOL,
    ATOL,
  )
  # alpha weighs false positives: predicting everything as class 0
  # costs more with a large alpha.
  all_zero = np.broadcast_to(np.array([10.0, -10.0, -10.0], F32), x.shape)
  fp_heavy = jl.tversky_loss(
    all_zero, t, alpha=0.9, beta=0.1, class_reduction="none"
  )
  fn_heavy = jl.tversky_loss(
    all_zero, t, alpha=0.1, beta=0.9, class_reduction="none"
  )
  assert np.all(fp_heavy[:, 0] > fn_heavy[:, 0])
  _check64(jl.tversky_loss, (x, t), expected, class_reduction="none")


def test_focal_tversky_applies_gamma_per_class():
  x, t, _ = _images(9, 4, 9)
  per_class = salehi_tversky(np_probs(x), t, 0.3, 0.7, 1.0)
  ours = jl.focal_tversky_loss(x, t, gamma=0.75)
  assert_close(ours, (per_class**0.75).mean(-1), RTOL, ATOL)
  # γ after the class mean (some libraries' convention) would fail the check
  # above: mean(x^γ) ≠ mean(x)^γ (Jensen), by 3e-4 to 5e-3 relative here.
  assert not np.allclose(ours, per_class.mean(-1) ** 0.75, rtol=RTOL, atol=ATOL)
  assert_close(
    jl.focal_tversky_loss(x, t, gamma=2.0, class_weights=[1, 2, 3]),
    (np.array([1, 2, 3]) * per_class**2).mean(-1),
    RTOL,
    ATOL,
  )
  _check64(jl.focal_tversky_loss, (x, t), (per_class**0.75).mean(-1))


def test_focal_tversky_traced_gamma_zero_is_one_for_every_class():
  """A traced γ = 0 gives (1 − TI)^0 = 1 for every class, a perfect one
  included (0 ** 0 = 1, numerics.safe_pow's rule; the deleted safe_power gave
  0 there), with a zero gradient with respect to γ at the perfect class."""
  t = np.eye(C, dtype=F32)[np.array([[0, 1, 2, 1], [2, 2, 0, 1]])]
  x, _, _ = _images(9, 2, 4)
  kwargs = dict(smooth=0.0, class_reduction="none")

  def loss(predictions, gamma, **kw):
    return jl.focal_tversky_loss(predictions, t, gamma=gamma, **kwargs, **kw)

  perfect = jax.jit(lambda g: loss(t, g, apply_softmax=False))
  assert_close(perfect(0.0), np.ones((2, C)), RTOL, ATOL)
  assert_close(perfect(0.5), np.zeros((2, C)), RTOL, ATOL)
  assert_close(jax.jit(lambda g: loss(x, g))(0.0), np.ones((2, C)), RTOL, ATOL)
  grad = jax.grad(lambda g: jnp.sum(loss(t, g, apply_softmax=False)))(0.0)
  assert_close(grad, 0.0, RTOL, ATOL)


def test_combo_loss():
  x, t, _ = _images(10, 4, 9)
  a, b = 0.3, 0.7
  paper = taghanaki_combo(x, t, a, b, 1.0)
  # Convention: (1 - a)(1 - DSC) instead of -(1 - a) DSC: shifted by 1 - a.
  expected = (paper + (1 - a)).mean(-1)
  assert_close(
    jl.combo_loss(x, t, ce_weight=a, ce_beta=b), expected, RTOL, ATOL
  )
  _check64(jl.combo_loss, (x, t), expected, ce_weight=a, ce_beta=b)


def test_combo_loss_probabilities_and_sigmoid():
  x, t, _ = _images(11, 4, 9)
  p = np.asarray(jax.nn.softmax(x), F32)
  expected = (taghanaki_combo(np.log(p), t, 0.5, 0.5, 1.0) + 0.5).mean(-1)
  assert_close(jl.combo_loss(p, t, apply_softmax=False), expected, RTOL, ATOL)
  xb, tb = x[..., :1], t[..., :1]
  expected = taghanaki_combo(xb, tb, 0.5, 0.5, 1.0)[:, 0] + 0.5
  assert_close(jl.combo_loss(xb, tb), expected, RTOL, ATOL)


def test_combo_log_one_minus_p_is_accurate_at_large_logits():
  """log(1 − p) of the winning class is the others' log-sum-exp minus the
  total: −2e4 + log 2 for logits (1e4, −1e4, −1e4), not −inf. With
  ``ce_weight=1`` and one pixel, each class's value is its cross-entropy
  ``−½ (t log p + (1 − t) log(1 − p))``."""
  x = jnp.array([[[1e4, -1e4, -1e4]], [[3.0, 1.0, -2.0]]], jnp.float32)
  t = np.array([[[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]]], F32)
  ours = jl.combo_loss(x, t, ce_weight=1.0, class_reduction="none")
  assert_close(ours[0], [1e4 - 0.5 * np.log(2), 1e4, 0.0], rtol=1e-6, atol=ATOL)
  p = np_probs(np.array([[3.0, 1.0, -2.0]]))[0]
  expected = -0.5 * np.where(t[1, 0] == 1, np.log(p), np.log1p(-p))
  assert_close(ours[1], expected, rtol=1e-6, atol=ATOL)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_softmax_matches_reference(per_image, classes):
  x, t, labels = _images(12, 4, 8)
  labels[0] %= 2  # image 0 lacks class 2
  t = np.eye(C, dtype=F32)[labels]
  expected = berman_lovasz(np_probs(x), labels, per_image, classes)
  ours = jl.lovasz_softmax_loss(x, t, per_image=per_image, classes=classes)
  assert_close(ours, expected, RTOL, ATOL)


def test_lovasz_softmax_options():
  x, t, labels = _images(13, 4, 8)
  valid = np.random.default_rng(14).random(labels.shape) < 0.7
  weights = np.array([0.5, 1.0, 2.0])
  expected = berman_lovasz(
    np_probs(x), labels, True, valid=valid, class_weights=weights, skip=(0,)
  )
  ours = jl.lovasz_softmax_loss(
    x, t, where=valid, class_weights=weights, ignore_background=True
  )
  assert_close(ours, expected, RTOL, ATOL)
  _check64(
    jl.lovasz_softmax_loss,
    (x, t),
    expected,
    where=valid,
    class_weights=weights,
    ignore_background=True,
  )
  p = np.asarray(jax.nn.softmax(x), F32)
  assert_close(
    jl.lovasz_softmax_loss(p, t, apply_softmax=False, per_image=False),
    berman_lovasz(p, labels, False),
    RTOL,
    ATOL,
  )


def test_lovasz_gradient_is_errors_times_lovasz_grad():
  """On probabilities, d loss / d p_ic = −sign(t − p) · lovasz_grad at the
  pixel's rank (the subgradient the reference back-propagates)."""
  rng = np.random.default_rng(15)
  p = rng.dirichlet(np.ones(C), size=(1, 7)).astype(F32)
  labels = rng.integers(0, C, (1, 7))
  labels[0, :3] = [0, 1, 2]
  t = np.eye(C, dtype=F32)[labels]
  grad = jax.grad(
    lambda q: jl.lovasz_softmax_loss(
      q, t, apply_softmax=False, classes="all", reduction="sum"
    )
  )(p)
  expected = np.zeros((7, C))
  for c in range(C):
    fg = t[0, :, c].astype(F64)
    errors = np.abs(fg - p[0, :, c])
    order = np.argsort(-errors, kind="stable")
    expected[order, c] = (
      -np.sign(fg - p[0, :, c])[order] * berman_lovasz_grad(fg[order])
    ) / C
  assert_close(grad[0], expected, rtol=1e-5, atol=ATOL)


# --------------------------------------------------------------------------- #
# layout, masks, edge cases


def test_pixel_where_is_slicing_pixels():
  """A pixel mask gives the loss of the valid pixels alone; an image with no
  valid pixel is 0 and left out of the mean."""
  x, t, _ = _images(16, 3, 6)
  where = np.ones((3, 6), bool)
  where[0, 4:] = False
  where[2] = False
  values = jl.dice_loss(x, t, where=where)
  assert_close(values[0], jl.dice_loss(x[:1, :4], t[:1, :4])[0], RTOL, ATOL)
  assert_close(values[1], jl.dice_loss(x[1:2], t[1:2])[0], RTOL, ATOL)
  assert values[2] == 0
  assert_close(
    jl.dice_loss(x, t, where=where, batch_reduction="mean"),
    values[:2].mean(),
    RTOL,
    ATOL,
  )
  assert_close(
    jl.jaccard_loss(x, t, where=where, smooth=0.5),
    rahman_jaccard(np_probs(x), t, 0.5, mask=where).mean(-1) * where.any(-1),
    RTOL,
    ATOL,
  )


def test_where_image_and_class_masks():
  x, t, _ = _images(17, 4, 2, 2)
  images = np.array([True, False, True, True])
  assert_close(
    jl.tversky_loss(x, t, where=images),
    jl.tversky_loss(x, t) * images,
    RTOL,
    ATOL,
  )
  entries = np.random.default_rng(18).random((4, C)) < 0.5
  per_class = jl.dice_loss(x, t, reduction="none")
  assert_close(
    jl.dice_loss(x, t, where=entries, reduction="none"),
    per_class * entries,
    RTOL,
    ATOL,
  )


def test_edge_cases_are_finite():
  """Empty target class with smooth=0 and probabilities exactly 0 and 1,
  ±1e4 logits, an all-ignored image: finite values and gradients; a class
  predicted empty and absent has loss 0."""
  t = np.zeros((2, 4, C), F32)
  t[0, :, 0] = 1
  t[1, :2, 1] = t[1, 2:, 0] = 1
  where = np.array([[True] * 4, [False] * 4])
  for fn, kwargs in [
    (jl.dice_loss, {"reduction": "none"}),
    (jl.jaccard_loss, {"class_reduction": "none"}),
    (jl.focal_tversky_loss, {"class_reduction": "none"}),
    (jl.combo_loss, {"class_reduction": "none"}),
    (jl.lovasz_softmax_loss, {}),
  ]:
    for x, kw in [
      (t, {"apply_softmax": False, "smooth": 0.0}),
      (1 - t, {"apply_softmax": False}),
      (1e4 * (2 * t - 1), {}),
      (1e4 * (2 * t - 1), {"where": where}),
    ]:
      if fn is jl.lovasz_softmax_loss:
        kw.pop("smooth", None)
      value, grad = jax.value_and_grad(
        lambda x: jnp.sum(fn(x, t, **kwargs, **kw))
      )(jnp.asarray(x))
      assert np.isfinite(value) and np.all(np.isfinite(grad)), (fn, kw)
  perfect = jl.dice_loss(
    t, t, apply_softmax=False, smooth=0.0, reduction="none"
  )
  assert_close(perfect, np.zeros((2, C)), RTOL, ATOL)


def test_traced_hyper_parameters():
  x, t, _ = _images(19, 4, 6)
  grads = jax.grad(
    lambda s, a, g, w: jnp.sum(
      jl.focal_tversky_loss(x, t, smooth=s, alpha=a, gamma=g)
      + jl.combo_loss(x, t, ce_weight=w)
    ),
    argnums=(0, 1, 2, 3),
  )(1.0, 0.3, 0.75, 0.5)
  assert all(np.isfinite(g) for g in grads)
  jitted = jax.jit(lambda a: jl.tversky_loss(x, t, alpha=a, beta=1 - a))
  assert_close(jitted(0.5), jl.dice_loss(x, t), RTOL, ATOL)


def test_checked_rejects_bad_probabilities():
  x, t, _ = _images(20, 2, 4)
  checked_rejects(
    jl.dice_loss,
    x,
    t,
    arg="predictions",
    what=r"must lie in \[0, 1\]",
    apply_softmax=False,
  )
  jl.checked(jl.dice_loss)(x, t)  # logits: any value


# --------------------------------------------------------------------------- #
# errors


@pytest.mark.parametrize(
  "fn",
  [
    jl.dice_loss,
    jl.jaccard_loss,
    jl.combo_loss,
    jl.lovasz_softmax_loss,
    jl.multiclass_generalized_dice_loss,
  ],
)
def test_errors_name_the_loss_and_argument(fn):
  name = fn.__name__
  x, t, _ = _images(21, 2, 4)
  with pytest.raises(
    ValueError,
    match=rf"{name}.*`predictions` \(2, 4, 3\)"
    rf".*`targets` \(2, 3, 3\)",
  ):
    fn(x, t[:, :3])
  with pytest.raises(TypeError, match=rf"{name}.*`predictions`"):
    fn(x.astype(np.int32), t)
  with pytest.raises(ValueError, match=rf"{name}.*reduction='avg'.*'mean'"):
    fn(x, t, reduction="avg")
  with pytest.raises(ValueError, match=rf"{name}.*`where`"):
    fn(x, t, where=np.ones((2, 4, 3, 1), bool))
  with pytest.raises(TypeError, match=rf"{name}.*`where`"):
    fn(x, t, where=np.ones((2, 4), np.int32))


@pytest.mark.parametrize(
  "fn", [jl.dice_loss, jl.jaccard_loss, jl.lovasz_softmax_loss]
)
def test_integer_label_map_error_reports_the_users_shapes(fn):
  """Issue 19 §5: the error showed `targets` (2, 4, 1), a shape the user
  never passed (optax's added class axis); it shows (2, 4) and the fix."""
  x, t, _ = _images(23, 2, 4)
  labels = np.argmax(t, axis=-1).astype(np.int32)  # [2, 4] label map
  with pytest.raises(ValueError) as error:
    fn(x, labels)
  message = str(error.value)
  assert message.startswith(f"{fn.__name__}: ")
  assert "`predictions` (2, 4, 3), `targets` (2, 4);" in message
  assert "(2, 4, 1)" not in message
  assert "jax.nn.one_hot(targets, 3)" in message
  with pytest.raises(ValueError, match=r"`targets` \(2, 4\) \(an array one"):
    fn(x, labels.astype(np.float32))  # soft targets one rank short


def test_option_errors():
  x, t, _ = _images(22, 2, 4)
  with pytest.raises(ValueError, match=r"dice_loss.*reduction='avg'"):
    jl.dice_loss(x, t, reduction="avg")
  with pytest.raises(ValueError, match=r"dice_loss: unknown reduction='avg'"):
    jl.dice_loss(x, t, batch_reduction="avg")
  with pytest.raises(ValueError, match=r"jaccard_loss.*class_reduction='avg'"):
    jl.jaccard_loss(x, t, class_reduction="avg")
  with pytest.raises(ValueError, match=r"dice_loss.*class axis"):
    jl.dice_loss(x, t, axis=(1, 2))
  with pytest.raises(ValueError, match=r"dice_loss.*`class_weights`.*\(3,\)"):
    jl.dice_loss(x, t, class_weights=np.ones(2))
  with pytest.raises(ValueError, match=r"tversky_loss.*`smooth` must be >= 0"):
    jl.tversky_loss(x, t, smooth=-1.0)
  with pytest.raises(ValueError, match=r"focal_tversky_loss.*`gamma` must be"):
    jl.focal_tversky_loss(x, t, gamma=0.0)
  with pytest.raises(ValueError, match=r"combo_loss.*`ce_weight` must lie"):
    jl.combo_loss(x, t, ce_weight=1.5)
  with pytest.raises(
    ValueError, match=r"lovasz_softmax_loss.*classes='some'.*'present'"
  ):
    jl.lovasz_softmax_loss(x, t, classes="some")
  with pytest.raises(TypeError, match=r"lovasz_softmax_loss.*`per_image`"):
    jl.lovasz_softmax_loss(x, t, per_image="yes")
