r"""Self-distillation and clustering losses: DINO and SwAV.

Both compare a softmax over ``K`` prototypes (DINO's output dimension,
SwAV's prototype scores) of one view with a target distribution computed,
gradient stopped, from another view: DINO's centred and sharpened teacher
softmax, SwAV's Sinkhorn-Knopp codes. The targets depend on a statistic of
the batch (DINO's centre, updated with the batch mean of the teacher
logits; Sinkhorn's sums over the examples), so each body here takes an
optional ``axis_name``: ``None`` on one device, a mesh axis in
:mod:`jaxloss.distributed.clustering`, where those sums are ``psum``-ed and
the result equals the one-device loss on the global batch.

Both losses return per-example values (``reduction="none"``, the library's
default; the official training loss is ``reduction="mean"``); ``where``
removes examples from the loss and from the batch statistic, ``weights``
weigh the loss only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, ring
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss._core.ring import AxisName

__all__ = ["dino_loss", "swav_loss"]


def _keep(where: ArrayLike | None, batch: int) -> jax.Array:
  """The ``[batch]`` mask of kept examples."""
  if where is None:
    return jnp.ones((batch,), bool)
  return checks.broadcast_mask("where", where, (batch,), same_rank=True)


# --------------------------------------------------------------------------- #
# DINO


class DinoInputs(NamedTuple):
  """Checked inputs: ``[S, B, K]`` student and ``[T, B, K]`` teacher logits
  (masked examples zeroed), the ``[K]`` centre and the ``[B]`` mask."""

  student: jax.Array
  teacher: jax.Array
  center: jax.Array
  keep: jax.Array


def dino_inputs(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  center: ArrayLike,
  student_temperature: Any,
  teacher_temperature: Any,
  center_momentum: Any,
  where: ArrayLike | None,
) -> DinoInputs:
  """Shapes, dtypes and hyper-parameters of :func:`dino_loss`'s arguments."""
  checks.positive("student_temperature", student_temperature)
  checks.positive("teacher_temperature", teacher_temperature)
  checks.in_unit_interval("center_momentum", center_momentum)
  student, teacher, centre = checks.floats(
    student_logits=student_logits, teacher_logits=teacher_logits, center=center
  )
  checks.rank("student_logits", student, 3)
  checks.rank("teacher_logits", teacher, 3)
  views, batch, k = student.shape
  checks.shape(
    "teacher_logits",
    teacher,
    (None, batch, k),
    "[teacher_views, batch, K], the batch and K of `student_logits`",
  )
  checks.shape("center", centre, (k,), "[K]")
  if not 1 <= teacher.shape[0] <= views or views < 2:
    raise checks.fail(
      f"argument `teacher_logits` has {teacher.shape[0]} views and "
      f"`student_logits` {views}: the teacher's views are the student's "
      "first views, so 1 <= teacher_views <= student_views, and there must "
      "be at least one pair of different views (student_views >= 2)."
    )
  keep = _keep(where, batch)
  rows = keep[None, :, None]
  zero = jnp.zeros((), student.dtype)
  return DinoInputs(
    jnp.where(rows, student, zero), jnp.where(rows, teacher, zero), centre, keep
  )


def dino_values(
  inputs: DinoInputs, student_temperature: Any, teacher_temperature: Any
) -> jax.Array:
  """Each example's mean cross-entropy over the pairs of different views."""
  student, teacher, centre, _ = inputs
  t_views, s_views = teacher.shape[0], student.shape[0]
  tau_s = numerics.like(student_temperature, student)
  tau_t = numerics.like(teacher_temperature, teacher)
  targets = jax.lax.stop_gradient(
    jnp.exp(
      numerics.log_softmax_at_temperature(teacher - centre[None, None], tau_t)
    )
  )
  log_p = numerics.log_softmax_at_temperature(student, tau_s)
  cross = -jnp.einsum("tbk,sbk->tsb", targets, log_p)  # [T, S, B]
  different = ~jnp.eye(t_views, s_views, dtype=bool)[:, :, None]
  pairs = t_views * s_views - t_views  # T <= S: T pairs share a view.
  return jnp.sum(jnp.where(different, cross, 0), axis=(0, 1)) / pairs


def dino_center(
  inputs: DinoInputs, center_momentum: Any, axis_name: AxisName | None
) -> jax.Array:
  """``m c + (1 − m) mean(teacher)`` over the teacher views and the kept
  examples (of every device along ``axis_name``); ``c`` when none is kept.
  No gradient."""
  teacher, centre, keep = inputs.teacher, inputs.center, inputs.keep
  # masked rows are 0
  total = ring.device_sum(jnp.sum(teacher, axis=(0, 1)), axis_name)
  count = ring.device_sum(jnp.sum(keep, dtype=teacher.dtype), axis_name)
  count = count * teacher.shape[0]
  batch_center = total / jnp.maximum(count, 1)
  m = numerics.like(center_momentum, centre)
  moved = centre * m + batch_center * (1 - m)
  return jax.lax.stop_gradient(jnp.where(count > 0, moved, centre))


@loss
def dino_loss(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  center: ArrayLike,
  *,
  student_temperature: ArrayLike = 0.1,
  teacher_temperature: ArrayLike = 0.04,
  center_momentum: ArrayLike = 0.9,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> tuple[jax.Array, jax.Array]:
  r"""DINO: self-distillation of a centred, sharpened teacher softmax into the
  student's, over every pair of different views; returns the loss and the
  updated centre.

  With the teacher's targets :math:`P_t = \operatorname{softmax}((g_t - c)
  / \tau_t)` (gradient stopped) and the student's :math:`\log Q_s =
  \operatorname{log\_softmax}(f_s / \tau_s)`, for each example

  .. math::
    \ell = \frac{1}{TS - T} \sum_{t=1}^{T} \sum_{s \ne t}
      -\sum_{k=1}^{K} P_{t,k} \log Q_{s,k},
    \qquad
    c' = m\,c + (1 - m)\,\frac{1}{T\,N} \sum_{t=1}^{T} \sum_{i=1}^{N} g_{t,i}

  where teacher view :math:`t` and student view :math:`t` are the same crop
  (the teacher sees the global crops, the student those and the local
  crops), :math:`N` the number of kept examples. The loss uses the centre
  ``c`` it is given; ``c'`` is the next step's (explicit state, no
  gradient).

  Args:
    student_logits: ``[student_views, batch, K]`` floating student outputs
      :math:`f` (the official code's ``student_output``, ``[views · batch,
      K]``, reshaped).
    teacher_logits: ``[teacher_views, batch, K]`` teacher outputs :math:`g`
      of the student's first ``teacher_views`` views, ``1 <= teacher_views
      <= student_views`` (no gradient).
    center: ``[K]`` the centre :math:`c` (start with zeros).
    student_temperature: :math:`\tau_s > 0` (may be traced).
    teacher_temperature: :math:`\tau_t > 0` (may be traced: the official
      warm-up schedule).
    center_momentum: :math:`m \in [0, 1]` (may be traced).
    where: optional ``[batch]`` boolean mask: a masked example takes no part
      in the loss nor in the centre's batch mean (all masked: ``c' = c``).
    weights: optional ``[batch]`` weights of the examples' values (not of
      the centre's mean).
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``(loss, new_center)``: ``[batch]`` per-example values (a scalar for
    ``"sum"``/``"mean"``/``"batchmean"``) and the ``[K]`` updated centre.

  Matches ``DINOLoss`` of facebookresearch/dino (``main_dino.py``:
  ``forward`` and ``update_center``) with ``reduction="mean"``: its loss is
  the mean over the ``n_loss_terms = T·S − T`` pairs of each pair's batch
  mean, which equals the batch mean of the per-example means here. Its
  ``teacher_output.chunk(2)`` fixes ``T = 2``; any ``T <= S`` here. Its
  centre update ``all_reduce``-s the batch sum over the processes: on
  several devices use :func:`jaxloss.distributed.dino_loss`. lightly's
  ``DINOLoss`` computes the same loss.

  >>> import jax.numpy as jnp, jaxloss
  >>> student = jnp.array([[[2.0, 0.0]], [[0.0, 2.0]], [[1.0, 1.0]]])
  >>> teacher = jnp.array([[[0.1, 0.0]], [[0.0, 0.1]]])
  >>> loss, center = jaxloss.dino_loss(student, teacher, jnp.zeros(2),
  ...                                  reduction="mean")
  >>> print(f"{loss:.4f}", center)
  9.5880 [0.005 0.005]

  References:
    Caron et al., `Emerging Properties in Self-Supervised Vision Transformers
    <https://arxiv.org/abs/2104.14294>`_, 2021 (DINO).
  """
  inputs = dino_inputs(
    student_logits,
    teacher_logits,
    center,
    student_temperature,
    teacher_temperature,
    center_momentum,
    where,
  )
  values = dino_values(inputs, student_temperature, teacher_temperature)
  new_center = dino_center(inputs, center_momentum, None)
  return reduce(values, reduction, weights=weights, where=inputs.keep), (
    new_center
  )


# --------------------------------------------------------------------------- #
# SwAV


class SwavInputs(NamedTuple):
  """Checked ``[B, K]`` scores of the two views (masked examples zeroed)
  and the ``[B]`` mask."""

  scores_a: jax.Array
  scores_b: jax.Array
  keep: jax.Array


def swav_inputs(
  scores_a: ArrayLike,
  scores_b: ArrayLike,
  temperature: Any,
  epsilon: Any,
  sinkhorn_iterations: Any,
  where: ArrayLike | None,
) -> SwavInputs:
  """Shapes, dtypes and hyper-parameters of :func:`swav_loss`'s arguments."""
  checks.positive("temperature", temperature)
  checks.positive("epsilon", epsilon)
  checks.positive_int("sinkhorn_iterations", sinkhorn_iterations)
  a, b = checks.same_shape_floats(scores_a=scores_a, scores_b=scores_b)
  checks.rank("scores_a", a, 2)
  keep = _keep(where, a.shape[0])
  zero = jnp.zeros((), a.dtype)
  return SwavInputs(
    jnp.where(keep[:, None], a, zero), jnp.where(keep[:, None], b, zero), keep
  )


def sinkhorn_codes(
  scores: jax.Array,
  keep: jax.Array,
  epsilon: Any,
  iterations: int,
  axis_name: AxisName | None,
) -> jax.Array:
  """SwAV's codes: ``iterations`` Sinkhorn-Knopp steps on ``exp(scores /
  epsilon)`` in log space, over the kept examples of every device along
  ``axis_name``; ``[B, K]``, each row summing to 1, no gradient.

  Each step gives every prototype the same total over the examples (a
  log-sum-exp over the batch axis: ``pmax`` and ``psum`` across devices),
  then every example the same total over the prototypes (a local
  ``log_softmax``). The official code's constants (``1/K``, ``1/B``, the
  first division by the total, the final ``× B``) shift every entry of the
  log-matrix alike and cancel in the next normalisation: leaving them out
  changes nothing but the rounding.
  """
  scores = jax.lax.stop_gradient(scores)
  rows = keep[:, None]
  # Shifted by the batch's largest kept score (the prototypes' normalisation
  # removes any constant): exact at huge scores under jit (see
  # log_softmax_at_temperature).
  peak = jnp.max(jnp.where(rows, scores, -jnp.inf), initial=-jnp.inf)
  peak = ring.device_max(peak, axis_name)
  peak = jnp.where(jnp.isfinite(peak), peak, 0)
  log_q = (scores - peak) / numerics.like(epsilon, scores)
  for _ in range(iterations):
    filled = jnp.where(rows, log_q, -jnp.inf)
    peak = ring.device_max(jnp.max(filled, axis=0, initial=-jnp.inf), axis_name)
    peak = jnp.where(jnp.isfinite(peak), peak, 0)
    total = ring.device_sum(
      jnp.sum(jnp.exp(filled - peak[None]), axis=0), axis_name
    )
    lse = jnp.where(
      total > 0, peak + jnp.log(jnp.where(total > 0, total, 1)), 0
    )
    log_q = jax.nn.log_softmax(log_q - lse[None], axis=-1)
  return jax.lax.stop_gradient(jnp.exp(log_q))


def swav_values(
  inputs: SwavInputs,
  temperature: Any,
  epsilon: Any,
  sinkhorn_iterations: int,
  axis_name: AxisName | None,
) -> jax.Array:
  """Each example's swapped-prediction cross-entropy, averaged over the two
  directions."""
  a, b, keep = inputs
  codes_a, codes_b = (
    sinkhorn_codes(s, keep, epsilon, sinkhorn_iterations, axis_name)
    for s in (a, b)
  )
  tau = numerics.like(temperature, a)
  log_p_a = numerics.log_softmax_at_temperature(a, tau)
  log_p_b = numerics.log_softmax_at_temperature(b, tau)
  return -0.5 * (
    jnp.sum(codes_a * log_p_b, axis=-1) + jnp.sum(codes_b * log_p_a, axis=-1)
  )


@loss
def swav_loss(
  scores_a: ArrayLike,
  scores_b: ArrayLike,
  *,
  temperature: ArrayLike = 0.1,
  epsilon: ArrayLike = 0.05,
  sinkhorn_iterations: int = 3,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""SwAV: swapped prediction of Sinkhorn-Knopp cluster codes between two
  views.

  With each view's codes :math:`q = \operatorname{Sinkhorn}(\exp(z /
  \varepsilon))` over the batch (gradient stopped; rows of ``[batch, K]``
  summing to 1) and :math:`\log p = \operatorname{log\_softmax}(z / \tau)`,
  for each example

  .. math::
    \ell = -\tfrac12 \sum_{k=1}^{K}
      \big(q^{a}_{k} \log p^{b}_{k} + q^{b}_{k} \log p^{a}_{k}\big)

  Sinkhorn alternates, ``sinkhorn_iterations`` times, giving each prototype
  an equal share of the batch (a sum over the kept examples) and each example
  total weight 1; it runs in log space (log-sum-exp), so no ``epsilon``
  overflows (the official ``exp(scores / epsilon)`` is ``inf`` in float32
  from ``scores / epsilon > 88.7``).

  Args:
    scores_a: ``[batch, K]`` floating scores of the first view against the
      ``K`` prototypes (SwAV: cosine similarities, normalised embeddings
      times normalised prototypes).
    scores_b: ``[batch, K]`` the same for the second view.
    temperature: :math:`\tau > 0` of the predictions (may be traced).
    epsilon: :math:`\varepsilon > 0`, Sinkhorn's entropic regularisation
      (may be traced).
    sinkhorn_iterations: the number of Sinkhorn-Knopp steps, a positive
      Python int.
    where: optional ``[batch]`` boolean mask: a masked example takes no part
      in the loss nor in Sinkhorn's sums over the batch.
    weights: optional ``[batch]`` weights of the examples' values (not of
      Sinkhorn's sums).
    reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-example values, or a scalar for ``"sum"``/``"mean"``/
    ``"batchmean"``.

  Matches facebookresearch/swav ``main_swav.py`` (``distributed_sinkhorn``
  and the loss in ``train``) for two crops, both used for assignment and no
  queue, with ``reduction="mean"``. The official Sinkhorn ``all_reduce``-s
  its row sums across processes: on several devices use
  :func:`jaxloss.distributed.swav_loss`. The iteration is written here (a
  few lines) rather than taken from ott-jax's ``Sinkhorn``: SwAV's is a
  fixed, small number of alternating normalisations starting with the
  prototypes, not a solve to convergence, and its sums must be ``psum``-ed
  over a data axis inside the iteration, which ott does not do; and ott-jax
  is not a dependency.

  >>> import jax.numpy as jnp, jaxloss
  >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> print(f"{jaxloss.swav_loss(a, a, reduction='mean'):.4f}")
  0.0000
  >>> print(f"{jaxloss.swav_loss(a, a[::-1], reduction='mean'):.4f}")
  10.0000

  References:
    Caron et al., `Unsupervised Learning of Visual Features by Contrasting
    Cluster Assignments <https://arxiv.org/abs/2006.09882>`_, 2020 (SwAV);
    Cuturi, `Sinkhorn Distances: Lightspeed Computation of Optimal Transport
    <https://arxiv.org/abs/1306.0895>`_, 2013.
  """
  inputs = swav_inputs(
    scores_a, scores_b, temperature, epsilon, sinkhorn_iterations, where
  )
  values = swav_values(inputs, temperature, epsilon, sinkhorn_iterations, None)
  return reduce(values, reduction, weights=weights, where=inputs.keep)
