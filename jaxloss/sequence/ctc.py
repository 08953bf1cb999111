"""Connectionist temporal classification: optax's forward algorithm, called
as is, with the jaxloss ``where``/``weights``/``reduction`` contract per
sequence.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

__all__ = ["ctc_loss", "ctc_loss_with_forward_probs"]


def _ctc_labels_rule(args, arg):
  """Unpadded labels are class indices other than the blank."""
  labels = jnp.asarray(args[arg])
  padded = jnp.asarray(args["label_paddings"]) > 0
  num_classes = np.shape(args["logits"])[-1]
  blank = args.get("blank_id", 0)
  ok = padded | ((labels >= 0) & (labels < num_classes) & (labels != blank))
  return jnp.all(ok), (
    f"must hold class indices in [0, {num_classes}) other "
    f"than blank_id={blank} where not padded"
  )


def _paddings_rule(args, arg):
  x = jnp.asarray(args[arg])
  return jnp.all((x == 0) | (x == 1)), "must hold only 0 and 1"


def _right_padded_rule(args, arg):
  x = jnp.asarray(args[arg])
  binary = jnp.all((x == 0) | (x == 1))
  right = jnp.all(x[..., 1:] >= x[..., :-1])
  return binary & right, (
    "must hold only 0 and 1, right-padded (the ones after the zeros)"
  )


_CTC_RULES = dict(
  labels=_ctc_labels_rule,
  logit_paddings=_paddings_rule,
  label_paddings=_right_padded_rule,
)


def _forward(
  logits: ArrayLike,
  logit_paddings: ArrayLike,
  labels: ArrayLike,
  label_paddings: ArrayLike,
  blank_id: int,
  log_epsilon: ArrayLike,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Checks the inputs, then runs the forward algorithm: per-sequence losses
  and the log-alphas."""
  logits = checks.as_float("logits", logits)
  checks.rank("logits", logits, 3)
  batch, frames, num_classes = logits.shape
  logit_paddings = checks.as_targets("logit_paddings", logit_paddings, logits)
  checks.shape(
    "logit_paddings",
    logit_paddings,
    (batch, frames),
    "[batch, time] like logits",
  )
  labels = checks.as_labels("labels", labels)
  checks.rank("labels", labels, 2)
  checks.shape("labels", labels, (batch, None), "[batch, max_labels]")
  label_paddings = checks.as_targets("label_paddings", label_paddings, logits)
  checks.shape("label_paddings", label_paddings, labels.shape, "labels' shape")
  if (
    not isinstance(blank_id, numbers.Integral)
    or isinstance(blank_id, bool)
    or not 0 <= blank_id < num_classes
  ):
    raise checks.fail(
      f"`blank_id` must be a Python int in [0, {num_classes}) (a class of "
      f"logits' last axis), got {blank_id!r}."
    )
  log_epsilon = jnp.asarray(numerics.like(log_epsilon, logits))
  checks.rank("log_epsilon", log_epsilon, 0)
  return _ctc(
    logits,
    logit_paddings,
    labels,
    label_paddings,
    log_epsilon,
    blank_id=int(blank_id),
  )


@functools.partial(jax.jit, static_argnames=("blank_id",))
def _ctc(
  logits: jax.Array,
  logit_paddings: jax.Array,
  labels: jax.Array,
  label_paddings: jax.Array,
  log_epsilon: jax.Array,
  *,
  blank_id: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """optax's forward algorithm (a scan over the frames), its results in the
  logits' dtype: optax builds float32 constants with ``jnp.ones`` (float64
  under x64). A sequence with an unpadded label outside ``[0, num_classes)``
  or equal to the blank gives NaN (:mod:`jaxloss._core.labels`; optax's
  one-hot would silently score such a label as probability 1)."""
  dtype = logits.dtype
  num_classes = logits.shape[-1]
  ok = (label_paddings > 0) | (
    labels_lib.valid(labels, num_classes) & (labels != blank_id)
  )
  values, log_alpha_blank, log_alpha_label = (
    optax.losses.ctc_loss_with_forward_probs(
      logits,
      logit_paddings,
      labels_lib.clipped(labels, num_classes),
      label_paddings,
      blank_id=blank_id,
      log_epsilon=log_epsilon,
    )
  )
  values = jnp.where(
    jnp.all(ok, axis=-1), values, jnp.asarray(jnp.nan, values.dtype)
  )
  return (
    values.astype(dtype),
    log_alpha_blank.astype(dtype),
    log_alpha_label.astype(dtype),
  )


@loss(**_CTC_RULES)
def ctc_loss_with_forward_probs(
  logits: ArrayLike,
  logit_paddings: ArrayLike,
  labels: ArrayLike,
  label_paddings: ArrayLike,
  *,
  blank_id: int = 0,
  log_epsilon: ArrayLike = -1e5,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""CTC loss per sequence and the forward (alpha) log-probabilities.

  .. math::
    \ell_b = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_b)} \prod_t
      \operatorname{softmax}(x_{b,t})_{\pi_t}

  over the alignments ``π`` (label sequences with blanks inserted and labels
  repeated) that collapse to the labels ``y_b`` by merging repeats and then
  removing blanks; a repeated label needs a blank between its two frames.
  Computed by optax's forward algorithm (Graves et al.), called as is.

  Args:
    logits: ``[batch, time, num_classes]`` floating logits, the blank class
      included (``log_softmax`` is applied inside).
    logit_paddings: ``[batch, time]`` 1.0 for padded frames, 0.0 otherwise.
    labels: ``[batch, max_labels]`` integer labels in ``[0, num_classes)``,
      never the blank; a sequence with any other unpadded label gives NaN
      (loud on purpose: optax's function scores it as probability 1).
    label_paddings: ``[batch, max_labels]`` 1.0 for padding, right-padded.
    blank_id: the blank's class index (a Python int).
    log_epsilon: stand-in for ``log(0)`` (may be traced). Supported
      range: every log-probability ``log_softmax(logits)`` must lie above
      it, i.e. each frame's logits spread less than ``-log_epsilon``
      (``1e5`` by default: logits up to ``5e4`` in magnitude). Beyond it
      real log-probabilities fall below the stand-in for ``log(0)`` and
      the forward algorithm's sums lose all precision (the value stays
      finite; the gradient is not the float64 one).
    where: optional ``[batch]`` mask of sequences; applies to the loss only.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``
      (optax's per-sequence values).

  Returns:
    ``(loss, log_alpha_blank, log_alpha_label)``: ``loss`` is ``[batch]``
    (or a scalar for ``"sum"``/``"mean"``); the log-alphas are
    ``[time, batch, max_labels + 1]`` and ``[time, batch, max_labels]``, as
    in optax, for every sequence whatever ``where`` says.

  Matches ``optax.losses.ctc_loss_with_forward_probs``; see :func:`ctc_loss`
  for the comparison with torch.

  >>> import jax.numpy as jnp, jaxloss
  >>> logits = jnp.zeros((1, 3, 3))
  >>> loss, blank, label = jaxloss.ctc_loss_with_forward_probs(
  ...     logits, jnp.zeros((1, 3)), jnp.array([[1, 2]]), jnp.zeros((1, 2)))
  >>> # uniform logits: 3 log 3 - log 5 (five alignments of "1 2" in 3 frames)
  >>> print(f"{float(loss[0]):.4f}", blank.shape, label.shape)
  1.6864 (3, 1, 3) (3, 1, 2)

  References:
    Graves, Fernández, Gomez and Schmidhuber, `Connectionist temporal
    classification: labelling unsegmented sequence data with recurrent
    neural networks <https://dl.acm.org/doi/abs/10.1145/1143844.1143891>`_,
    2006.
  """
  values, log_alpha_blank, log_alpha_label = _forward(
    logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon
  )
  values = reduce(values, reduction, weights=weights, where=where)
  return values, log_alpha_blank, log_alpha_label


@loss(**_CTC_RULES)
def ctc_loss(
  logits: ArrayLike,
  logit_paddings: ArrayLike,
  labels: ArrayLike,
  label_paddings: ArrayLike,
  *,
  blank_id: int = 0,
  log_epsilon: ArrayLike = -1e5,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Connectionist temporal classification (CTC) loss per sequence.

  .. math::
    \ell_b = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_b)} \prod_t
      \operatorname{softmax}(x_{b,t})_{\pi_t}

  over the alignments ``π`` that collapse to the labels ``y_b`` (merge
  repeats, then drop blanks). Computed by optax's forward algorithm, called
  as is.

  Args:
    logits: ``[batch, time, num_classes]`` floating logits, the blank class
      included (``log_softmax`` is applied inside).
    logit_paddings: ``[batch, time]`` 1.0 for padded frames, 0.0 otherwise.
    labels: ``[batch, max_labels]`` integer labels in ``[0, num_classes)``,
      never the blank; a sequence with any other unpadded label gives NaN
      (loud on purpose: optax's function scores it as probability 1).
    label_paddings: ``[batch, max_labels]`` 1.0 for padding, right-padded.
    blank_id: the blank's class index (a Python int).
    log_epsilon: stand-in for ``log(0)`` (may be traced). Supported
      range: every log-probability ``log_softmax(logits)`` must lie above
      it, i.e. each frame's logits spread less than ``-log_epsilon``
      (``1e5`` by default: logits up to ``5e4`` in magnitude). Beyond it
      real log-probabilities fall below the stand-in for ``log(0)`` and
      the forward algorithm's sums lose all precision (the value stays
      finite; the gradient is not the float64 one).
    where: optional ``[batch]`` mask of sequences.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``
      (optax's per-sequence values).

  Returns:
    ``[batch]`` negative log-likelihoods, or a scalar for ``"sum"``/
    ``"mean"``.

  Matches ``optax.losses.ctc_loss`` and, per sequence,
  ``torch.nn.functional.ctc_loss(log_softmax(logits).transpose(0, 1),
  labels, input_lengths, target_lengths, blank, reduction="none")`` with the
  lengths counted from the paddings. Differences from torch: an infeasible
  target (longer than the frames, counting the blanks that repeated labels
  need) gives a large finite value (of order ``-log_epsilon``, 1e5) where
  torch gives ``inf`` (or 0 with ``zero_infinity=True``); torch's
  ``reduction="mean"`` divides each sequence by its target length first,
  which is ``weights=1/max(target_length, 1)`` with ``"batchmean"`` here.
  Padded frames may be anywhere (torch: only at the end).

  >>> import jax.numpy as jnp, jaxloss
  >>> logits = jnp.zeros((2, 3, 3))
  >>> labels = jnp.array([[1, 2], [1, 1]])  # 5 and 1 alignments in 3 frames
  >>> jaxloss.ctc_loss(logits, jnp.zeros((2, 3)), labels, jnp.zeros((2, 2)))
  Array([1.686399, 3.295837], dtype=float32)

  References:
    Graves, Fernández, Gomez and Schmidhuber, `Connectionist temporal
    classification: labelling unsegmented sequence data with recurrent
    neural networks <https://dl.acm.org/doi/abs/10.1145/1143844.1143891>`_,
    2006.
  """
  values, _, _ = _forward(
    logits, logit_paddings, labels, label_paddings, blank_id, log_epsilon
  )
  return reduce(values, reduction, weights=weights, where=where)
