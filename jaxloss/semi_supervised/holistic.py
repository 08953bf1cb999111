"""FixMatch and MixMatch, with optax's proposed signatures and values, and
MixMatch's preprocessing (sharpening, label guessing)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import reduce
from jaxloss.semi_supervised import _inputs

__all__ = ["fixmatch_loss", "guess_labels", "mixmatch_loss", "sharpen"]


@loss(labeled_labels=_inputs.labeled_rule)
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
  labeled, weak, strong = _inputs.two_dimensional(
    labeled_logits=labeled_logits,
    unlabeled_weak_logits=unlabeled_weak_logits,
    unlabeled_strong_logits=unlabeled_strong_logits,
  )
  checks.same_shape(unlabeled_weak_logits=weak, unlabeled_strong_logits=strong)
  labeled_mask = _inputs.example_mask(
    "labeled_where", labeled_where, labeled.shape[0]
  )
  unlabeled_mask = _inputs.example_mask(
    "unlabeled_where", unlabeled_where, weak.shape[0]
  )
  supervised = _inputs.supervised_term(
    labeled, labeled_labels, labeled_mask, label_smoothing
  )
  unsupervised = _inputs.pseudo_label_terms(strong, weak, confidence_threshold)
  unsupervised = reduce(unsupervised, "mean", where=unlabeled_mask)
  return supervised + numerics.like(lambda_u, supervised) * unsupervised


@loss(
  labeled_labels=_inputs.labeled_rule,
  unlabeled_targets=value_checks.unit_interval,
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
  labeled, unlabeled, targets = _inputs.two_dimensional(
    labeled_logits=labeled_logits,
    unlabeled_logits=unlabeled_logits,
    unlabeled_targets=unlabeled_targets,
  )
  checks.same_shape(unlabeled_logits=unlabeled, unlabeled_targets=targets)
  labeled_mask = _inputs.example_mask(
    "labeled_where", labeled_where, labeled.shape[0]
  )
  unlabeled_mask = _inputs.example_mask(
    "unlabeled_where", unlabeled_where, unlabeled.shape[0]
  )
  supervised = _inputs.supervised_term(
    labeled, labeled_labels, labeled_mask, 0.0
  )
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
