"""Self-supervised losses over a batch sharded across devices: Barlow Twins
and VICReg, whose batch means, variances, cross-correlation and covariance
matrices are ``psum``-combined over the data axis.

The maths is the one-device losses' own (:mod:`jaxloss.self_supervised`'s
loss bodies take the axis name), so each equals its one-device loss on the
concatenated global batch, in value and in every gradient. Per device: the
local ``[b, dim]`` views and one ``dim × dim`` matrix (the cross-correlation,
or each view's covariance), ``psum``-ed: ``dim² `` floats of communication
per matrix, whatever the batch.
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxloss._core import checks, ring
from jaxloss._core.loss import loss
from jaxloss._core.ring import AxisName
from jaxloss.self_supervised import redundancy

__all__ = ["barlow_twins_loss", "vicreg_loss"]


@loss
def barlow_twins_loss(
  z_a: ArrayLike,
  z_b: ArrayLike,
  *,
  axis_name: AxisName,
  lambda_: ArrayLike = 0.0051,
  eps: ArrayLike = 1e-5,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Barlow Twins over the global batch: :func:`jaxloss.barlow_twins_loss`
  with the batch statistics summed over every device along ``axis_name``.

  .. math::
    \mu = \frac{\operatorname{psum}(\sum_n z_n)}{N}, \quad
    \sigma^2 = \frac{\operatorname{psum}(\sum_n (z_n - \mu)^2)}{N}, \quad
    \mathcal{C} = \frac{\operatorname{psum}(\hat z^{A\top} \hat z^B)}{N}

  with :math:`N` the global number of kept examples, then the one-device
  loss of :math:`\mathcal{C}`.

  Args:
    z_a, z_b: ``[b, dim]`` this device's slices of the two views.
    axis_name: the mesh (or pmap) axis, or tuple of axes, the batch is
      sharded over.
    lambda_, eps: as in :func:`jaxloss.barlow_twins_loss`, the same on every
      device.
    where: optional ``[b]`` mask of this device's examples; devices may keep
      different numbers of examples.

  Returns:
    A scalar, replicated.

  Equals :func:`jaxloss.barlow_twins_loss` on the concatenated global batch,
  value and gradients: the official code's synchronised ``BatchNorm1d`` and
  ``all_reduce`` of the cross-correlation (facebookresearch/barlowtwins
  ``main.py``). Standardising with per-device statistics instead trains a
  different model.

  >>> import jax, jax.numpy as jnp, jaxloss, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))  # one device here; any number works
  >>> z_a = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
  >>> z_b = jnp.array([[1.0, 0.5], [0.0, 1.0], [1.0, 0.0], [0.0, 0.5]])
  >>> print(f"{jd.shard(jd.barlow_twins_loss, mesh)(z_a, z_b):.4f}")
  1.0025
  >>> print(f"{jaxloss.barlow_twins_loss(z_a, z_b):.4f}")
  1.0025

  References:
    Zbontar et al., `Barlow Twins: Self-Supervised Learning via Redundancy
    Reduction <https://arxiv.org/abs/2103.03230>`_, 2021.
  """
  checks.nonnegative("lambda_", lambda_)
  checks.positive("eps", eps)
  a, b, keep = redundancy.check_views(z_a, z_b, where)
  ring.axis_size(axis_name)
  a, b, keep = ring.varying((a, b, keep), axis_name)
  return redundancy.barlow_twins_value(a, b, keep, lambda_, eps, axis_name)


@loss
def vicreg_loss(
  z_a: ArrayLike,
  z_b: ArrayLike,
  *,
  axis_name: AxisName,
  invariance_weight: ArrayLike = 25.0,
  variance_weight: ArrayLike = 25.0,
  covariance_weight: ArrayLike = 1.0,
  gamma: ArrayLike = 1.0,
  eps: ArrayLike = 1e-4,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""VICReg over the global batch: :func:`jaxloss.vicreg_loss` with the
  invariance term's sum, the means, variances and covariance matrices
  summed over every device along ``axis_name``.

  .. math::
    \operatorname{Cov}(Z) = \frac{\operatorname{psum}\big(\sum_n
      (z_n - \mu)(z_n - \mu)^\top\big)}{N - 1}, \qquad
    \mu = \frac{\operatorname{psum}(\sum_n z_n)}{N}

  with :math:`N` the global number of kept examples.

  Args:
    z_a, z_b: ``[b, dim]`` this device's slices of the two views.
    axis_name: the mesh (or pmap) axis, or tuple of axes, the batch is
      sharded over.
    invariance_weight, variance_weight, covariance_weight, gamma, eps: as in
      :func:`jaxloss.vicreg_loss`, the same on every device.
    where: optional ``[b]`` mask of this device's examples; devices may keep
      different numbers of examples.

  Returns:
    A scalar, replicated.

  Equals :func:`jaxloss.vicreg_loss` on the concatenated global batch, value
  and gradients (a global batch of one is a ``ValueError``).
  facebookresearch/vicreg ``main_vicreg.py`` gathers the embeddings
  (``FullGatherLayer``) for the variance and covariance and averages the
  invariance term per GPU, the same over equal, unmasked shards; this
  ``psum``-s ``dim × dim`` matrices instead of gathering ``N × dim``
  embeddings.

  >>> import jax, jax.numpy as jnp, jaxloss, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> z_a = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
  >>> z_b = jnp.array([[1.0, 0.5], [0.0, 1.0], [1.0, 0.0], [0.0, 0.5]])
  >>> print(f"{jd.shard(jd.vicreg_loss, mesh)(z_a, z_b):.4f}")
  16.3360

  References:
    Bardes et al., `VICReg: Variance-Invariance-Covariance Regularization
    for Self-Supervised Learning <https://arxiv.org/abs/2105.04906>`_, 2022.
  """
  checks.positive("eps", eps)
  checks.nonnegative("invariance_weight", invariance_weight)
  checks.nonnegative("variance_weight", variance_weight)
  checks.nonnegative("covariance_weight", covariance_weight)
  a, b, keep = redundancy.check_views(z_a, z_b, where)
  devices = ring.axis_size(axis_name)
  redundancy.check_batch("z_a", a, "its variances divide by N - 1", devices)
  a, b, keep = ring.varying((a, b, keep), axis_name)
  return redundancy.vicreg_value(
    a,
    b,
    keep,
    invariance_weight,
    variance_weight,
    covariance_weight,
    gamma,
    eps,
    axis_name,
  )
