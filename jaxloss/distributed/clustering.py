"""DINO and SwAV over a batch sharded across devices: DINO's centre and
Sinkhorn's sums over the examples combined over the data axis.

The bodies are those of :mod:`jaxloss.self_supervised.clustering` with an
``axis_name``: every sum over the batch inside them (the teacher logits and
kept count of DINO's centre; each prototype's log-sum-exp over the examples
in every Sinkhorn step, a ``pmax`` and a ``psum``) is combined over
``axis_name``, as the official code's ``all_reduce`` does, and the reduction
is :func:`~jaxloss.distributed._reduction.global_reduce`. The centre is
replicated (the same ``[K]`` array on every device), and so is the new one.
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxloss._core import ring
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction
from jaxloss._core.ring import AxisName
from jaxloss.distributed._reduction import global_reduce
from jaxloss.self_supervised import clustering as one_device

__all__ = ["dino_loss", "swav_loss"]


@loss
def dino_loss(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  center: ArrayLike,
  *,
  axis_name: AxisName,
  student_temperature: ArrayLike = 0.1,
  teacher_temperature: ArrayLike = 0.04,
  center_momentum: ArrayLike = 0.9,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> tuple[jax.Array, jax.Array]:
  r""":func:`jaxloss.dino_loss` of the global batch, whose slices (axis 1 of
  the logits) the devices along ``axis_name`` hold; the centre's batch mean
  is over the global batch.

  .. math::
    c' = m\,c + (1 - m)\,
      \frac{\operatorname{psum}\big(\sum_t \sum_{i\ \text{kept}} g_{t,i}\big)}
           {T \cdot \operatorname{psum}(\#\text{kept})}

  Args:
    student_logits: ``[student_views, b, K]`` this device's examples.
    teacher_logits: ``[teacher_views, b, K]`` this device's examples.
    center: ``[K]`` the centre, replicated (the same on every device).
    axis_name: the mesh (or pmap) axis, or tuple of axes, the batch is
      sharded over.
    student_temperature, teacher_temperature, center_momentum: as in
      :func:`jaxloss.dino_loss`, the same on every device.
    where: optional ``[b]`` mask of this device's examples (kept counts may
      differ from device to device).
    weights: optional ``[b]`` weights of this device's examples.
    reduction: see :func:`jaxloss.reduce`, over the global batch; default
      ``"mean"``; ``"none"`` returns this device's ``[b]`` values.

  Returns:
    ``(loss, new_center)``: the replicated scalar (this device's ``[b]``
    values for ``"none"``) and the replicated ``[K]`` new centre.

  Equals :func:`jaxloss.dino_loss` on the concatenated global batch, value,
  gradients and new centre, as the official ``update_center``'s
  ``dist.all_reduce`` of the batch sum does (which divides by the local
  batch times the world size: equal when nothing is masked).

  >>> import jax, jax.numpy as jnp, jaxloss, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))  # one device here; any number works
  >>> student = jnp.array([[[2.0, 0.0]], [[0.0, 2.0]], [[1.0, 1.0]]])
  >>> teacher = jnp.array([[[0.1, 0.0]], [[0.0, 0.1]]])
  >>> dino = jax.jit(jd.shard(jd.dino_loss, mesh))  # views axis 0, batch 1
  >>> loss, center = dino(student, teacher, jnp.zeros(2))
  >>> print(f"{loss:.4f}", center)
  9.5880 [0.005 0.005]

  References:
    Caron et al., `Emerging Properties in Self-Supervised Vision Transformers
    <https://arxiv.org/abs/2104.14294>`_, 2021 (DINO).
  """
  inputs = one_device.dino_inputs(
    student_logits,
    teacher_logits,
    center,
    student_temperature,
    teacher_temperature,
    center_momentum,
    where,
  )
  ring.axis_size(axis_name)
  values = one_device.dino_values(
    inputs, student_temperature, teacher_temperature
  )
  new_center = one_device.dino_center(inputs, center_momentum, axis_name)
  value = global_reduce(values, reduction, inputs.keep, weights, axis_name)
  return value, new_center


@loss
def swav_loss(
  scores_a: ArrayLike,
  scores_b: ArrayLike,
  *,
  axis_name: AxisName,
  temperature: ArrayLike = 0.1,
  epsilon: ArrayLike = 0.05,
  sinkhorn_iterations: int = 3,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r""":func:`jaxloss.swav_loss` of the global batch, whose slices the
  devices along ``axis_name`` hold: Sinkhorn's codes are those of the
  global batch.

  .. math::
    \log Q_{ik} \leftarrow \log Q_{ik}
      - \log \operatorname{psum}\Big(\sum_{j\ \text{kept}}
        e^{\log Q_{jk}}\Big),
    \qquad
    \log Q_{ik} \leftarrow \log Q_{ik} - \log \sum_{l} e^{\log Q_{il}}

  In each Sinkhorn step, each prototype's log-sum-exp over the examples is
  taken over every device (a ``pmax`` of the local maxima, a ``psum`` of
  the shifted sums: ``K`` floats each); each example's normalisation over
  the prototypes is local.

  Args:
    scores_a, scores_b: ``[b, K]`` this device's examples' scores.
    axis_name: the mesh (or pmap) axis, or tuple of axes, the batch is
      sharded over.
    temperature, epsilon, sinkhorn_iterations: as in
      :func:`jaxloss.swav_loss`, the same on every device.
    where: optional ``[b]`` mask of this device's examples (kept counts may
      differ from device to device).
    weights: optional ``[b]`` weights of this device's examples.
    reduction: see :func:`jaxloss.reduce`, over the global batch; default
      ``"mean"``; ``"none"`` returns this device's ``[b]`` values.

  Returns:
    A scalar, replicated (this device's ``[b]`` values for ``"none"``).

  Equals :func:`jaxloss.swav_loss` on the concatenated global batch, value
  and gradients, as the official ``distributed_sinkhorn``'s
  ``dist.all_reduce`` of its row sums does.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))  # one device here; any number works
  >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> swav = jax.jit(jd.shard(jd.swav_loss, mesh))
  >>> print(f"{swav(a, a[::-1]):.4f}")
  10.0000

  References:
    Caron et al., `Unsupervised Learning of Visual Features by Contrasting
    Cluster Assignments <https://arxiv.org/abs/2006.09882>`_, 2020 (SwAV).
  """
  inputs = one_device.swav_inputs(
    scores_a, scores_b, temperature, epsilon, sinkhorn_iterations, where
  )
  ring.axis_size(axis_name)
  values = one_device.swav_values(
    inputs, temperature, epsilon, sinkhorn_iterations, axis_name
  )
  return global_reduce(values, reduction, inputs.keep, weights, axis_name)
