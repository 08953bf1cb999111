"""Semi-supervised losses: FixMatch, MixMatch and the consistency, pseudo-label
and entropy terms that are written around them.

``fixmatch_loss`` and ``mixmatch_loss`` keep the positional signatures,
defaults and values of optax's proposed ``optax.losses`` functions (optax
pull request 1551, ``optax/losses/_semi_supervised.py``; not in the optax
0.2.8 release) and return one scalar, the training loss. The other losses
return per-example values that reduce through :func:`jaxloss.reduce`.
Targets built from a model's own predictions (pseudo-labels, sharpened or
teacher probabilities) carry no gradient, as in every reference
implementation.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.classification import (
  softmax_cross_entropy,
  softmax_cross_entropy_with_integer_labels,
)
from jaxloss.divergence import kl_divergence

__all__ = [
  "entropy_minimization_loss",
  "fixmatch_loss",
  "guess_labels",
  "mean_teacher_consistency_loss",
  "mixmatch_loss",
  "pseudo_label_loss",
  "sharpen",
  "training_signal_annealing_mask",
  "uda_consistency_loss",
]

Schedule = Literal["linear", "log", "exp"]
SCHEDULES: tuple[Schedule, ...] = ("linear", "log", "exp")


# --------------------------------------------------------------------------- #
# shared pieces


def _labeled_rule(args, arg):
  """Integer labels lie in ``[0, C)``, soft labels in ``[0, 1]``; labels of
  examples that ``labeled_where`` drops may hold anything."""
  labels = jnp.asarray(args[arg])
  num_classes = jnp.shape(args["labeled_logits"])[-1]
  if labels.ndim == jnp.ndim(args["labeled_logits"]):
    ok = (labels >= 0) & (labels <= 1)
    what = "must hold soft labels in [0, 1]"
  else:
    ok = (labels >= 0) & (labels < num_classes)
    what = f"must hold class indices in [0, {num_classes})"
  where = args.get("labeled_where")
  if where is not None:
    where = jnp.asarray(where)
    ok = ok | ~where.reshape(where.shape + (1,) * (ok.ndim - where.ndim))
  return jnp.all(ok), what


def _example_mask(arg: str, where: ArrayLike | None, size: int):
  """A ``[size]`` boolean mask, or ``None``."""
  if where is None:
    return None
  where = checks.as_mask(arg, where)
  checks.shape(arg, where, (size,), "one entry per example")
  return where


def _supervised_term(
  logits: jax.Array,
  labels: ArrayLike,
  where: jax.Array | None,
  label_smoothing: ArrayLike,
) -> jax.Array:
  """The mean cross-entropy of the labeled batch: integer ``[B]`` labels or
  soft ``[B, C]`` labels (``labeled_labels``), over the unmasked examples."""
  labels = jnp.asarray(labels)
  checks.rank("labeled_labels", labels, (1, 2))
  if labels.ndim == 1:
    labels = checks.as_labels("labeled_labels", labels)
    checks.labels_for(labels, logits, -1, "labeled_logits", "labeled_labels")
    values = softmax_cross_entropy_with_integer_labels(
      logits, labels, label_smoothing=label_smoothing
    )
  else:
    labels = checks.as_targets("labeled_labels", labels, logits)
    checks.same_shape(labeled_logits=logits, labeled_labels=labels)
    values = softmax_cross_entropy(
      logits, labels, label_smoothing=label_smoothing
    )
  return reduce(values, "mean", where=where)


def _two_dimensional(**arrays: ArrayLike) -> tuple[jax.Array, ...]:
  """Floating ``[N, C]`` arrays (named by the keywords), one class count."""
  converted = tuple(checks.as_float(a, x) for a, x in arrays.items())
  for arg, x in zip(arrays, converted):
    checks.rank(arg, x, 2)
  first_arg, first = next(iter(arrays)), converted[0]
  for arg, x in zip(arrays, converted):
    if x.shape[-1] != first.shape[-1]:
      raise checks.fail(
        f"arguments `{first_arg}` {first.shape} and `{arg}` {x.shape} must "
        "have the same number of classes (last axis)."
      )
  dtype = jnp.result_type(*converted)
  return tuple(x.astype(dtype) for x in converted)


# --------------------------------------------------------------------------- #
# the two optax names


@loss(labeled_labels=_labeled_rule)
def fixmatch_loss(
  labeled_logits: ArrayLike,
  labeled_labels: ArrayLike,
  unlabeled_weak_logits: ArrayLike,
  unlabeled_strong_logits: ArrayLike,
  confidence_threshold: ArrayLike = 0.95,
  lambda_u: ArrayLike = 1.0,
  *,
  labeled_where: ArrayLike | None = None,
  unlabeled_where: ArrayLike | None = None,
  label_smoothing: ArrayLike = 0.0,
) -> jax.Array:
  r"""FixMatch: supervised cross-entropy plus the cross-entropy of strongly
  augmented unlabeled examples against confident weak pseudo-labels.

  .. math::
    \ell = \frac{1}{B} \sum_{b=1}^{B} H(y_b, p_b)
      + \lambda_u \frac{1}{U} \sum_{u=1}^{U}
        \mathbb{1}\big[\max_c q_{u,c} \ge \tau\big]\,
        H\big(\hat y_u, \operatorname{softmax}(s_u)\big),
    \qquad q_u = \operatorname{softmax}(w_u),\ \hat y_u = \arg\max_c q_{u,c}

  The pseudo-labels and the mask come from the weak logits with the gradient
  stopped. The unlabeled sum is divided by the number of unlabeled examples
  ``U`` (the paper's normalisation), not by the number kept: with no
  confident example the loss is the supervised term alone.

  Args:
    labeled_logits: ``[B, C]`` logits of the labeled batch.
    labeled_labels: ``[B]`` integer labels or ``[B, C]`` soft labels.
    unlabeled_weak_logits: ``[U, C]`` logits of the weakly augmented
      unlabeled batch (pseudo-labels and confidence; no gradient).
    unlabeled_strong_logits: ``[U, C]`` logits of the strongly augmented
      unlabeled batch.
    confidence_threshold: ``τ`` in [0, 1]; an unlabeled example counts where
      its weak maximum probability is ``>= τ`` (0 keeps all).
    lambda_u: ``λ_u``, the weight of the unlabeled term.
    labeled_where: optional ``[B]`` boolean mask of labeled examples; the
      supervised mean is over the unmasked ones (0 when none is).
    unlabeled_where: optional ``[U]`` boolean mask of unlabeled examples;
      ``U`` is then the number unmasked.
    label_smoothing: ``ε`` for the supervised cross-entropy (as
      :func:`jaxloss.softmax_cross_entropy_with_integer_labels`).

  Returns:
    a scalar, the FixMatch training loss.

  Matches optax's ``optax.losses.fixmatch_loss`` (optax pull request 1551,
  ``optax/losses/_semi_supervised.py``; not in optax 0.2.8) with the default
  keyword arguments, in float32 and float64; bfloat16 logits are computed in
  float32 (optax computes in bfloat16). An empty labeled batch gives a
  supervised term of 0 (optax: NaN). USB's and TorchSSL's ``FixMatch`` use
  the same unlabeled term (``mask.mean()``-style normalisation by ``U``).

  >>> import jax.numpy as jnp, jaxloss
  >>> labeled = jnp.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  >>> weak = jnp.array([[5.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
  >>> strong = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
  >>> jaxloss.fixmatch_loss(labeled, jnp.array([0, 1]), weak, strong, 0.9)
  Array(0.6712..., dtype=float32)

  References:
    Sohn et al., `FixMatch: Simplifying Semi-Supervised Learning with
    Consistency and Confidence <https://arxiv.org/abs/2001.07685>`_, 2020.
  """
  checks.in_unit_interval("confidence_threshold", confidence_threshold)
  checks.nonnegative("lambda_u", lambda_u)
  checks.in_unit_interval("label_smoothing", label_smoothing)
  labeled, weak, strong = _two_dimensional(
    labeled_logits=labeled_logits,
    unlabeled_weak_logits=unlabeled_weak_logits,
    unlabeled_strong_logits=unlabeled_strong_logits,
  )
  checks.same_shape(unlabeled_weak_logits=weak, unlabeled_strong_logits=strong)
  labeled_mask = _example_mask("labeled_where", labeled_where, labeled.shape[0])
  unlabeled_mask = _example_mask(
    "unlabeled_where", unlabeled_where, weak.shape[0]
  )
  supervised = _supervised_term(
    labeled, labeled_labels, labeled_mask, label_smoothing
  )
  unsupervised = _pseudo_label_terms(strong, weak, confidence_threshold, ">=")
  unsupervised = reduce(unsupervised, "mean", where=unlabeled_mask)
  return supervised + numerics.like(lambda_u, supervised) * unsupervised


@loss(
  labeled_labels=_labeled_rule, unlabeled_targets=value_checks.unit_interval
)
def mixmatch_loss(
  labeled_logits: ArrayLike,
  labeled_labels: ArrayLike,
  unlabeled_logits: ArrayLike,
  unlabeled_targets: ArrayLike,
  lambda_u: ArrayLike = 100.0,
  *,
  labeled_where: ArrayLike | None = None,
  unlabeled_where: ArrayLike | None = None,
) -> jax.Array:
  r"""MixMatch: supervised cross-entropy plus the squared error (Brier score)
  between unlabeled predictions and their guessed targets.

  .. math::
    \ell = \frac{1}{B} \sum_{b=1}^{B} H(y_b, p_b)
      + \lambda_u \frac{1}{U} \sum_{u=1}^{U}
        \big\| q_u - \operatorname{softmax}(z_u) \big\|_2^2

  The inputs are MixMatch's mixed batches: label guessing
  (:func:`jaxloss.guess_labels`), sharpening (:func:`jaxloss.sharpen`) and
  MixUp happen before. The targets ``q`` carry no gradient. The paper's
  :math:`\mathcal{L}_U` also divides by the number of classes ``C``; optax
  (and so jaxloss) does not, so the paper's ``λ_u`` is ``C`` times this one.

  Args:
    labeled_logits: ``[B, C]`` logits of the mixed labeled batch ``X'``.
    labeled_labels: ``[B]`` integer labels or ``[B, C]`` soft (mixed)
      labels.
    unlabeled_logits: ``[U, C]`` logits of the mixed unlabeled batch ``U'``.
    unlabeled_targets: ``[U, C]`` floating target probabilities ``q``.
    lambda_u: ``λ_u``, the weight of the unlabeled term.
    labeled_where: optional ``[B]`` boolean mask of labeled examples.
    unlabeled_where: optional ``[U]`` boolean mask of unlabeled examples; the
      unlabeled mean is over the unmasked ones (0 when none is).

  Returns:
    a scalar, the MixMatch training loss.

  Matches optax's ``optax.losses.mixmatch_loss`` (optax pull request 1551,
  ``optax/losses/_semi_supervised.py``; not in optax 0.2.8) with the default
  keyword arguments; bfloat16 logits are computed in float32.

  >>> import jax.numpy as jnp, jaxloss
  >>> labeled = jnp.array([[2.0, 0.0], [0.0, 1.0]])
  >>> unlabeled = jnp.array([[1.0, 0.0], [0.0, 0.0]])
  >>> targets = jnp.array([[1.0, 0.0], [0.5, 0.5]])
  >>> jaxloss.mixmatch_loss(labeled, jnp.array([0, 1]), unlabeled, targets)
  Array(7.4530..., dtype=float32)

  References:
    Berthelot et al., `MixMatch: A Holistic Approach to Semi-Supervised
    Learning <https://arxiv.org/abs/1905.02249>`_, 2019.
  """
  checks.nonnegative("lambda_u", lambda_u)
  labeled, unlabeled, targets = _two_dimensional(
    labeled_logits=labeled_logits,
    unlabeled_logits=unlabeled_logits,
    unlabeled_targets=unlabeled_targets,
  )
  checks.same_shape(unlabeled_logits=unlabeled, unlabeled_targets=targets)
  labeled_mask = _example_mask("labeled_where", labeled_where, labeled.shape[0])
  unlabeled_mask = _example_mask(
    "unlabeled_where", unlabeled_where, unlabeled.shape[0]
  )
  supervised = _supervised_term(labeled, labeled_labels, labeled_mask, 0.0)
  errors = jax.nn.softmax(unlabeled, axis=-1) - jax.lax.stop_gradient(targets)
  brier = jnp.sum(jnp.square(errors), axis=-1)
  unsupervised = reduce(brier, "mean", where=unlabeled_mask)
  return supervised + numerics.like(lambda_u, supervised) * unsupervised


# --------------------------------------------------------------------------- #
# MixMatch's preprocessing


@loss(probabilities=value_checks.unit_interval)
def sharpen(
  probabilities: ArrayLike, temperature: ArrayLike = 0.5, *, axis: int = -1
) -> jax.Array:
  r"""Temperature sharpening of a categorical distribution.

  .. math::
    \operatorname{Sharpen}(p, T)_c = \frac{p_c^{1/T}}{\sum_k p_k^{1/T}}

  Computed in log space (a softmax of ``log p / T``); a probability of 0
  stays 0 with a finite gradient. ``T = 1`` returns the normalised input;
  ``T → 0`` approaches the one-hot argmax.

  Args:
    probabilities: ``[..., C]`` probabilities (each row sums to 1, or at
      least has one positive entry).
    temperature: ``T > 0`` (MixMatch's default 0.5).
    axis: the class axis.

  Returns:
    ``probabilities``' shape: the sharpened distributions (all 0 for a row of
    zeros).

  Matches the formula of MixMatch's eq. 7 and USB's / TorchSSL's MixMatch
  sharpening (``p ** (1 / T)`` normalised).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.sharpen(jnp.array([0.6, 0.4]), 0.5)
  Array([0.6923..., 0.3076...], dtype=float32)

  References:
    Berthelot et al., `MixMatch: A Holistic Approach to Semi-Supervised
    Learning <https://arxiv.org/abs/1905.02249>`_, 2019 (eq. 7).
  """
  checks.positive("temperature", temperature)
  p = checks.as_float("probabilities", probabilities)
  checks.min_rank("probabilities", p, 1, "the class axis")
  axis = checks.canonical_axis(axis, p.ndim)
  positive = p > 0
  scaled = jnp.log(jnp.where(positive, p, 1)) / numerics.like(temperature, p)
  log_sharp = numerics.masked_log_softmax(scaled, axis, positive)
  return jnp.where(positive, jnp.exp(log_sharp), 0)


@loss
def guess_labels(logits: ArrayLike, temperature: ArrayLike = 0.5) -> jax.Array:
  r"""MixMatch's label guess: the sharpened average of the predictions over
  ``K`` augmentations of each unlabeled example, gradient stopped.

  .. math::
    q_u = \operatorname{Sharpen}\Big(\frac{1}{K} \sum_{k=1}^{K}
      \operatorname{softmax}(z_{k,u}),\ T\Big)

  Args:
    logits: ``[K, U, C]`` logits of ``K`` augmentations of ``U`` unlabeled
      examples.
    temperature: ``T > 0`` of :func:`jaxloss.sharpen` (MixMatch's 0.5; 1
      disables sharpening).

  Returns:
    ``[U, C]`` target distributions, without gradient (the
    ``unlabeled_targets`` of :func:`jaxloss.mixmatch_loss` before MixUp).

  Matches the formula of MixMatch's eqs. 6-7 (the label guess of USB's and
  TorchSSL's ``MixMatch``).

  >>> import jax.numpy as jnp, jaxloss
  >>> two_views = jnp.array([[[1.0, 0.0]], [[0.0, 0.0]]])
  >>> jaxloss.guess_labels(two_views, 1.0)
  Array([[0.6155..., 0.3844...]], dtype=float32)

  References:
    Berthelot et al., `MixMatch: A Holistic Approach to Semi-Supervised
    Learning <https://arxiv.org/abs/1905.02249>`_, 2019 (section 3.2).
  """
  logits = checks.as_float("logits", logits)
  checks.rank("logits", logits, 3)
  average = jnp.mean(jax.nn.softmax(logits, axis=-1), axis=0)
  return jax.lax.stop_gradient(sharpen(average, temperature))


# --------------------------------------------------------------------------- #
# consistency, pseudo-label and entropy terms (per example)


def _pseudo_label_terms(
  logits: jax.Array,
  target_logits: jax.Array,
  threshold: ArrayLike,
  compare: Literal[">=", ">"],
) -> jax.Array:
  """Cross-entropy of ``logits`` against ``argmax(target_logits)``, 0 where
  the target's top probability is below (or, for ``">"``, not above) the
  threshold; no gradient through the target."""
  target = jax.lax.stop_gradient(target_logits)
  top = jnp.max(jax.nn.softmax(target, axis=-1), axis=-1)
  threshold = numerics.like(threshold, top)
  confident = top >= threshold if compare == ">=" else top > threshold
  values = softmax_cross_entropy_with_integer_labels(
    logits, jnp.argmax(target, axis=-1)
  )
  return jnp.where(confident, values, jnp.zeros((), values.dtype))


@loss
def uda_consistency_loss(
  weak_logits: ArrayLike,
  strong_logits: ArrayLike,
  *,
  temperature: ArrayLike = 0.4,
  confidence_threshold: ArrayLike = 0.8,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""UDA's consistency loss: the KL divergence from the sharpened,
  confidence-masked prediction on the original (weakly augmented) example to
  the prediction on its strong augmentation.

  .. math::
    \ell_u = \mathbb{1}\big[\max_c \operatorname{softmax}(w_u)_c > \beta\big]
      \, \mathrm{KL}\big(\operatorname{softmax}(w_u / \tau) \,\big\|\,
      \operatorname{softmax}(s_u)\big)

  The target (and its mask) carry no gradient. An example below the
  threshold has value 0 but stays in ``"mean"``'s count, as in UDA (the mean
  is over the whole unlabeled batch). ``temperature=1`` and
  ``confidence_threshold=0`` give the plain consistency loss (UDA without
  sharpening or masking). Training-signal annealing applies to the
  supervised term: see :func:`jaxloss.training_signal_annealing_mask`.

  Args:
    weak_logits: ``[U, C]`` logits of the original or weakly augmented
      examples (the target; no gradient).
    strong_logits: ``[U, C]`` logits of the strongly augmented examples.
    temperature: ``τ > 0`` that sharpens the target (UDA's 0.4).
    confidence_threshold: ``β``; an example counts where its unsharpened top
      probability is ``> β`` (UDA's 0.8; strictly greater, as UDA's code).
    where, weights, reduction: see :func:`jaxloss.reduce`; default
      ``"none"``.

  Returns:
    ``[U]``, or a scalar for ``"sum"``, ``"mean"`` and ``"batchmean"``.

  Matches the formula of UDA's confidence-based masking and sharpening of
  predictions, and the unlabeled term of USB's and TorchSSL's ``UDA``
  (``max_probs > p_cutoff``, ``T``).

  >>> import jax.numpy as jnp, jaxloss
  >>> weak = jnp.array([[3.0, 0.0], [0.1, 0.0]])
  >>> strong = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  >>> jaxloss.uda_consistency_loss(weak, strong)
  Array([0.3091..., 0.        ], dtype=float32)

  References:
    Xie et al., `Unsupervised Data Augmentation for Consistency Training
    <https://arxiv.org/abs/1904.12848>`_, 2020.
  """
  checks.positive("temperature", temperature)
  checks.in_unit_interval("confidence_threshold", confidence_threshold)
  weak, strong = checks.same_shape_floats(
    weak_logits=weak_logits, strong_logits=strong_logits
  )
  checks.rank("strong_logits", strong, 2)
  weak = jax.lax.stop_gradient(weak)
  top = jnp.max(jax.nn.softmax(weak, axis=-1), axis=-1)
  confident = top > numerics.like(confidence_threshold, top)
  target = jax.nn.softmax(weak / numerics.like(temperature, weak), axis=-1)
  values = kl_divergence(jax.nn.log_softmax(strong, axis=-1), target)
  values = jnp.where(confident, values, jnp.zeros((), values.dtype))
  return reduce(values, reduction, weights=weights, where=where)


@loss
def training_signal_annealing_mask(
  logits: ArrayLike,
  labels: ArrayLike,
  progress: ArrayLike,
  *,
  schedule: Schedule = "linear",
) -> jax.Array:
  r"""UDA's training-signal annealing (TSA): which labeled examples still
  train, given how far training has gone.

  .. math::
    \eta_t = \alpha_t \Big(1 - \frac{1}{C}\Big) + \frac{1}{C}, \qquad
    \text{keep}_b = \operatorname{softmax}(x_b)_{y_b} \le \eta_t

  with :math:`\alpha_t = t/T` (``"linear"``), :math:`1 - e^{-5 t/T}`
  (``"log"``) or :math:`e^{5 (t/T - 1)}` (``"exp"``). Pass the mask as
  ``where`` to the supervised cross-entropy with ``reduction="mean"`` (UDA
  averages over the kept examples).

  Args:
    logits: ``[B, C]`` logits of the labeled batch (no gradient).
    labels: ``[B]`` integer labels.
    progress: ``t / T`` in [0, 1], the fraction of training done (may be
      traced).
    schedule: ``"linear"``, ``"log"`` or ``"exp"``.

  Returns:
    ``[B]`` boolean mask, ``True`` where the example is kept.

  Matches the formula of UDA's training-signal annealing and UDA's code
  (``get_tsa_threshold``: ``α_t (1 - 1/C) + 1/C``; kept where the
  correct-class probability is ``<=`` the threshold).

  >>> import jax.numpy as jnp, jaxloss
  >>> logits = jnp.array([[4.0, 0.0], [0.0, 0.5]])
  >>> jaxloss.training_signal_annealing_mask(logits, jnp.array([0, 1]), 0.5)
  Array([False,  True], dtype=bool)

  References:
    Xie et al., `Unsupervised Data Augmentation for Consistency Training
    <https://arxiv.org/abs/1904.12848>`_, 2020.
  """
  checks.option("schedule", schedule, SCHEDULES)
  checks.in_unit_interval("progress", progress)
  logits = jax.lax.stop_gradient(checks.as_float("logits", logits))
  checks.rank("logits", logits, 2)
  labels = checks.as_labels("labels", labels)
  checks.labels_for(labels, logits, -1)
  t = jnp.asarray(progress).astype(logits.dtype)
  alpha = {
    "linear": lambda: t,
    "log": lambda: 1 - jnp.exp(-5 * t),
    "exp": lambda: jnp.exp(5 * (t - 1)),
  }[schedule]()
  num_classes = logits.shape[-1]
  threshold = alpha * (1 - 1 / num_classes) + 1 / num_classes
  probabilities = jax.nn.softmax(logits, axis=-1)
  correct = jnp.take_along_axis(probabilities, labels[:, None], axis=-1)
  return correct[:, 0] <= threshold


@loss
def mean_teacher_consistency_loss(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  *,
  loss_type: Literal["squared_error", "kl"] = "squared_error",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Mean Teacher's consistency cost between the student's and the
  (gradient-stopped) teacher's class probabilities.

  .. math::
    \ell^{\text{squared\_error}} = \frac{1}{C} \sum_c (p_c - q_c)^2,
    \qquad
    \ell^{\text{kl}} = \sum_c q_c (\log q_c - \log p_c),
    \qquad p = \operatorname{softmax}(s),\ q = \operatorname{softmax}(t)

  The teacher is usually an exponential moving average of the student's
  weights (e.g. ``optax.incremental_update``); its logits carry no gradient.

  Args:
    student_logits: ``[N, C]`` logits of the student.
    teacher_logits: ``[N, C]`` logits of the teacher (no gradient).
    loss_type: ``"squared_error"`` (the paper's choice) or ``"kl"``.
    where, weights, reduction: see :func:`jaxloss.reduce`; default
      ``"none"``.

  Returns:
    ``[N]``, or a scalar for ``"sum"``, ``"mean"`` and ``"batchmean"``.

  Matches the authors' code (``softmax_mse_loss`` divided by the number of
  classes, ``softmax_kl_loss``), with ``reduction="mean"`` their
  per-minibatch value; the squared error equals USB's ``MeanTeacher``
  consistency (``consistency_loss(..., "mse")``).

  >>> import jax.numpy as jnp, jaxloss
  >>> student = jnp.array([[1.0, 0.0], [0.0, 0.0]])
  >>> teacher = jnp.array([[0.0, 0.0], [0.0, 0.0]])
  >>> jaxloss.mean_teacher_consistency_loss(student, teacher)
  Array([0.05338..., 0.        ], dtype=float32)

  References:
    Tarvainen and Valpola, `Mean teachers are better role models:
    Weight-averaged consistency targets improve semi-supervised deep learning
    results <https://arxiv.org/abs/1703.01780>`_, 2017.
  """
  checks.option("loss_type", loss_type, ("squared_error", "kl"))
  student, teacher = checks.same_shape_floats(
    student_logits=student_logits, teacher_logits=teacher_logits
  )
  checks.rank("student_logits", student, 2)
  teacher = jax.lax.stop_gradient(teacher)
  if loss_type == "kl":
    values = kl_divergence(
      jax.nn.log_softmax(student, axis=-1), jax.nn.softmax(teacher, axis=-1)
    )
  else:
    errors = jax.nn.softmax(student, axis=-1) - jax.nn.softmax(teacher, axis=-1)
    values = jnp.mean(jnp.square(errors), axis=-1)
  return reduce(values, reduction, weights=weights, where=where)


@loss
def pseudo_label_loss(
  logits: ArrayLike,
  *,
  confidence_threshold: ArrayLike = 0.95,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Pseudo-Label: the cross-entropy of unlabeled predictions against their
  own confident argmax.

  .. math::
    \ell_u = \mathbb{1}\big[\max_c p_{u,c} \ge \tau\big]\,
      \big(-\log p_{u, \hat y_u}\big), \qquad
    p_u = \operatorname{softmax}(z_u),\ \hat y_u = \arg\max_c p_{u,c}

  The pseudo-label and the mask carry no gradient. An example below the
  threshold has value 0 and stays in ``"mean"``'s count (USB's
  ``PseudoLabel``). ``confidence_threshold=0`` is Lee's original loss (every
  unlabeled example with its argmax); its weight schedule
  :math:`\alpha(t)` is the caller's factor.

  Args:
    logits: ``[U, C]`` logits of the unlabeled examples.
    confidence_threshold: ``τ`` in [0, 1] (USB's ``p_cutoff``, 0.95).
    where, weights, reduction: see :func:`jaxloss.reduce`; default
      ``"none"``.

  Returns:
    ``[U]``, or a scalar for ``"sum"``, ``"mean"`` and ``"batchmean"``.

  Matches the formula of Lee (2013)'s unlabeled term (softmax
  cross-entropy against the argmax) with the confidence threshold of USB's
  and TorchSSL's ``PseudoLabel`` (``max_probs >= p_cutoff``).

  >>> import jax.numpy as jnp, jaxloss
  >>> logits = jnp.array([[4.0, 0.0], [0.2, 0.0]])
  >>> jaxloss.pseudo_label_loss(logits, confidence_threshold=0.9)
  Array([0.0181..., 0.        ], dtype=float32)

  References:
    Lee, `Pseudo-Label: The Simple and Efficient Semi-Supervised Learning
    Method for Deep Neural Networks
    <https://www.kaggle.com/blobs/download/forum-message-attachment-files/746/pseudo_label_final.pdf>`_,
    ICML workshop 2013.
  """
  checks.in_unit_interval("confidence_threshold", confidence_threshold)
  logits = checks.as_float("logits", logits)
  checks.rank("logits", logits, 2)
  values = _pseudo_label_terms(logits, logits, confidence_threshold, ">=")
  return reduce(values, reduction, weights=weights, where=where)


@loss
def entropy_minimization_loss(
  logits: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Entropy minimisation: the Shannon entropy of each prediction.

  .. math::
    \ell_u = -\sum_c p_{u,c} \log p_{u,c}, \qquad
    p_u = \operatorname{softmax}(z_u)

  Computed from ``log_softmax``, so saturated logits give 0 (not NaN).
  Multiply by the weight ``λ`` of the paper's criterion and add it to the
  supervised loss.

  Args:
    logits: ``[..., C]`` logits of the unlabeled examples.
    where, weights, reduction: see :func:`jaxloss.reduce`; default
      ``"none"``.

  Returns:
    ``logits``' shape without the last axis, or a scalar for ``"sum"``,
    ``"mean"`` and ``"batchmean"``.

  Matches the formula of Grandvalet and Bengio (2005)'s entropy term; no
  packaged reference implementation.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.entropy_minimization_loss(jnp.array([[0.0, 0.0], [9.0, 0.0]]))
  Array([0.6931..., 0.0012...], dtype=float32)

  References:
    Grandvalet and Bengio, `Semi-supervised Learning by Entropy Minimization
    <https://papers.nips.cc/paper/2740-semi-supervised-learning-by-entropy-minimization>`_,
    NeurIPS 2005.
  """
  logits = checks.as_float("logits", logits)
  checks.min_rank("logits", logits, 1, "the class axis")
  log_p = jax.nn.log_softmax(logits, axis=-1)
  values = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
  return reduce(values, reduction, weights=weights, where=where)
