"""Consistency, pseudo-label and entropy terms (per example): UDA with
training-signal annealing, Mean Teacher, Pseudo-Label, entropy
minimisation."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.divergence import kl_divergence
from jaxloss.semi_supervised import _inputs

__all__ = [
  "entropy_minimization_loss",
  "mean_teacher_consistency_loss",
  "pseudo_label_loss",
  "training_signal_annealing_mask",
  "uda_consistency_loss",
]

Schedule = Literal["linear", "log", "exp"]
SCHEDULES: tuple[Schedule, ...] = ("linear", "log", "exp")


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
  values = _inputs.pseudo_label_terms(logits, logits, confidence_threshold)
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
