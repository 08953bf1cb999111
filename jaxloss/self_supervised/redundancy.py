"""Redundancy-reduction losses over batch statistics: Barlow Twins (the
cross-correlation of the standardised views) and VICReg (variance,
invariance, covariance).

The loss bodies take an optional ``axis_name``: ``None`` on one device, the
data axis in :mod:`jaxloss.distributed`, where every batch sum (counts,
means, variances, the cross-correlation and covariance matrices) is
``psum``-combined, so that the two share the maths and the sharded loss is
the one-device loss of the global batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, ring
from jaxloss._core.loss import loss
from jaxloss._core.ring import AxisName

__all__ = ["barlow_twins_loss", "vicreg_loss"]


# --------------------------------------------------------------------------- #
# batch sums: one device (axis_name None) or psum over the data axis


def check_views(
  z_a: ArrayLike, z_b: ArrayLike, where: ArrayLike | None
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
  """Two ``[batch, dim]`` float views of one shape and an optional
  ``[batch]`` mask of the examples kept."""
  a, b = checks.same_shape_floats(z_a=z_a, z_b=z_b)
  checks.rank("z_a", a, 2)
  keep = None
  if where is not None:
    keep = checks.broadcast_mask("where", where, a.shape[:1], same_rank=True)
  return a, b, keep


def _kept(x: jax.Array, keep: jax.Array | None) -> jax.Array:
  return x if keep is None else jnp.where(keep[:, None], x, 0)


def _count(
  x: jax.Array, keep: jax.Array | None, axis_name: AxisName | None
) -> jax.Array:
  if keep is None:  # static: this batch, or every device's
    devices = 1 if axis_name is None else jax.lax.axis_size(axis_name)
    return jnp.asarray(x.shape[0] * devices, x.dtype)
  return ring.device_sum(jnp.sum(keep, dtype=x.dtype), axis_name)


def _centred(
  x: jax.Array,
  keep: jax.Array | None,
  count: jax.Array,
  axis_name: AxisName | None,
) -> jax.Array:
  """``x`` minus its batch mean over the kept examples (0 where not kept)."""
  x = _kept(x, keep)
  mean = ring.device_sum(
    jnp.sum(x, axis=0, keepdims=True), axis_name
  ) / jnp.maximum(count, 1)
  return _kept(x - mean, keep)


def _off_diagonal(c: jax.Array) -> jax.Array:
  row = jax.lax.broadcasted_iota(jnp.int32, c.shape, 0)
  column = jax.lax.broadcasted_iota(jnp.int32, c.shape, 1)
  return jnp.where(row == column, jnp.zeros((), c.dtype), c)


# --------------------------------------------------------------------------- #
# Barlow Twins


def _standardised(
  z: jax.Array,
  keep: jax.Array | None,
  count: jax.Array,
  eps: ArrayLike,
  axis_name: AxisName | None,
) -> jax.Array:
  """Each dimension standardised over the batch with the biased variance
  (BatchNorm1d without affine parameters, in training mode). Computed on
  ``z / s``, ``s`` a power of two near each dimension's largest magnitude
  held constant (the map is scale-free but for ``eps``, which becomes
  ``eps / s²``), so huge inputs do not overflow the variance."""
  scale = numerics.magnitude_scale(_kept(z, keep), 0)
  if axis_name is not None:
    scale = jax.lax.stop_gradient(jax.lax.pmax(scale, axis_name))
  centred = _centred(z / scale, keep, count, axis_name)
  variance = ring.device_sum(
    jnp.sum(jnp.square(centred), axis=0, keepdims=True), axis_name
  )
  variance = variance / jnp.maximum(count, 1)
  eps = numerics.like(eps, z) / jnp.square(scale)
  return centred * jax.lax.rsqrt(variance + eps)


def barlow_twins_value(
  z_a: jax.Array,
  z_b: jax.Array,
  keep: jax.Array | None,
  lambda_: ArrayLike,
  eps: ArrayLike,
  axis_name: AxisName | None = None,
) -> jax.Array:
  """Barlow Twins of checked ``[b, dim]`` views, over the devices along
  ``axis_name`` (``None``: this batch)."""
  count = _count(z_a, keep, axis_name)
  a = _standardised(z_a, keep, count, eps, axis_name)
  b = _standardised(z_b, keep, count, eps, axis_name)
  c = ring.device_sum(a.T @ b, axis_name) / jnp.maximum(count, 1)
  on_diagonal = jnp.sum(jnp.square(1 - jnp.diagonal(c)))
  off_diagonal = jnp.sum(jnp.square(_off_diagonal(c)))
  value = on_diagonal + numerics.like(lambda_, c) * off_diagonal
  return jnp.where(count > 0, value, jnp.zeros((), value.dtype))


@loss
def barlow_twins_loss(
  z_a: ArrayLike,
  z_b: ArrayLike,
  *,
  lambda_: ArrayLike = 0.0051,
  eps: ArrayLike = 1e-5,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Barlow Twins: the cross-correlation matrix of two views' batch-
  standardised embeddings pulled towards the identity.

  .. math::
    \hat z_{nd} = \frac{z_{nd} - \mu_d}{\sqrt{\sigma_d^2 + \epsilon}},
    \qquad
    \mathcal{C}_{ij} = \frac{1}{N} \sum_n \hat z^A_{ni} \hat z^B_{nj},
    \qquad
    \mathcal{L} = \sum_i (1 - \mathcal{C}_{ii})^2
      + \lambda \sum_i \sum_{j \ne i} \mathcal{C}_{ij}^2

  with the batch mean :math:`\mu_d` and the biased batch variance
  :math:`\sigma_d^2` (divided by :math:`N`) of each view.

  The value is a batch statistic: one scalar, no ``reduction``; ``where``
  removes examples from the batch (the means, variances, :math:`N` and
  :math:`\mathcal{C}` use only the kept ones). A batch with nothing kept
  gives 0 with a zero gradient. A batch of identical embeddings (zero
  variance) standardises to 0, so :math:`\mathcal{C} = 0` and the value
  is the dimension, with finite gradients.

  Args:
    z_a: ``[batch, dim]`` projections of the first view.
    z_b: ``[batch, dim]`` projections of the second view.
    lambda_: :math:`\lambda \ge 0`, the weight of the off-diagonal
      (redundancy) terms; the official code's default 0.0051 (the paper's
      pseudocode and text use 5e-3).
    eps: :math:`\epsilon > 0` added to the variance (``BatchNorm1d``'s 1e-5).
    where: optional ``[batch]`` mask of the examples that take part.

  Returns:
    A scalar.

  Matches facebookresearch/barlowtwins ``main.py`` (``BarlowTwins.forward``:
  ``BatchNorm1d(affine=False)`` in training mode, synchronised across GPUs,
  ``c = bn(z1).T @ bn(z2) / batch_size``). The paper's pseudocode, and
  lightly's ``BarlowTwinsLoss`` (default ``lambda_param=5e-3``), standardise
  with the unbiased standard deviation (``z.std(0)``, no :math:`\epsilon`),
  which scales :math:`\mathcal{C}` by about :math:`(N-1)/N`; lightly's
  multi-GPU mode averages the GPUs' cross-correlations, each standardised
  with its own GPU's statistics. Over a batch sharded across devices,
  :func:`jaxloss.distributed.barlow_twins_loss` is this loss of the global
  batch (the official code's synchronised batch norm).

  >>> import jax.numpy as jnp, jaxloss
  >>> z_a = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
  >>> z_b = jnp.array([[1.0, 0.5], [0.0, 1.0], [1.0, 0.0], [0.0, 0.5]])
  >>> print(f"{jaxloss.barlow_twins_loss(z_a, z_b):.4f}")
  1.0025

  References:
    Zbontar et al., `Barlow Twins: Self-Supervised Learning via Redundancy
    Reduction <https://arxiv.org/abs/2103.03230>`_, 2021.
  """
  checks.nonnegative("lambda_", lambda_)
  checks.positive("eps", eps)
  a, b, keep = check_views(z_a, z_b, where)
  return barlow_twins_value(a, b, keep, lambda_, eps)


# --------------------------------------------------------------------------- #
# VICReg


def _variance_and_covariance(
  z: jax.Array,
  keep: jax.Array | None,
  count: jax.Array,
  gamma: ArrayLike,
  eps: ArrayLike,
  axis_name: AxisName | None,
) -> tuple[jax.Array, jax.Array]:
  """VICReg's variance hinge and covariance penalty of one view."""
  centred = _centred(z, keep, count, axis_name)
  covariance = ring.device_sum(centred.T @ centred, axis_name) / jnp.maximum(
    count - 1, 1
  )
  std = jnp.sqrt(jnp.diagonal(covariance) + numerics.like(eps, z))
  variance_term = jnp.mean(jax.nn.relu(numerics.like(gamma, z) - std))
  covariance_term = jnp.sum(jnp.square(_off_diagonal(covariance)))
  return variance_term, covariance_term / z.shape[-1]


def vicreg_value(
  z_a: jax.Array,
  z_b: jax.Array,
  keep: jax.Array | None,
  invariance_weight: ArrayLike,
  variance_weight: ArrayLike,
  covariance_weight: ArrayLike,
  gamma: ArrayLike,
  eps: ArrayLike,
  axis_name: AxisName | None = None,
) -> jax.Array:
  """VICReg of checked ``[b, dim]`` views, over the devices along
  ``axis_name`` (``None``: this batch)."""
  count = _count(z_a, keep, axis_name)
  squares = jnp.sum(jnp.square(_kept(z_a - z_b, keep)))
  invariance = ring.device_sum(squares, axis_name) / (
    jnp.maximum(count, 1) * z_a.shape[-1]
  )
  var_a, cov_a = _variance_and_covariance(
    z_a, keep, count, gamma, eps, axis_name
  )
  var_b, cov_b = _variance_and_covariance(
    z_b, keep, count, gamma, eps, axis_name
  )
  statistics = numerics.like(variance_weight, z_a) * (
    var_a + var_b
  ) / 2 + numerics.like(covariance_weight, z_a) * (cov_a + cov_b)
  zero = jnp.zeros((), z_a.dtype)
  return numerics.like(invariance_weight, z_a) * invariance + jnp.where(
    count > 1, statistics, zero
  )


def check_batch(arg: str, z: jax.Array, why: str, devices: int = 1) -> None:
  """A batch of one (over ``devices`` devices) is an error: ``why``."""
  if z.shape[0] * devices == 1:
    raise checks.fail(
      f"needs a batch of at least 2 examples ({why}), got `{arg}` of shape "
      f"{z.shape}" + (f" on each of {devices} devices." if devices > 1 else ".")
    )


@loss
def vicreg_loss(
  z_a: ArrayLike,
  z_b: ArrayLike,
  *,
  invariance_weight: ArrayLike = 25.0,
  variance_weight: ArrayLike = 25.0,
  covariance_weight: ArrayLike = 1.0,
  gamma: ArrayLike = 1.0,
  eps: ArrayLike = 1e-4,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""VICReg: variance-invariance-covariance regularisation of two views'
  embeddings.

  .. math::
    \mathcal{L} = \lambda\, \frac{1}{N D} \sum_n \|z^A_n - z^B_n\|^2
      + \mu\, \frac{v(Z^A) + v(Z^B)}{2} + \nu\, \big(c(Z^A) + c(Z^B)\big)

  .. math::
    v(Z) = \frac{1}{D} \sum_d \max\big(0, \gamma -
      \sqrt{\operatorname{Var}(z_{\cdot d}) + \epsilon}\big), \qquad
    c(Z) = \frac{1}{D} \sum_{i \ne j} \operatorname{Cov}(Z)_{ij}^2

  with the unbiased batch variance and covariance (divided by
  :math:`N - 1`).

  The value is a batch statistic: one scalar, no ``reduction``; ``where``
  removes examples from the batch (the invariance mean, the variances and
  covariances use only the kept ones, and :math:`N` counts them). Fewer than
  two kept examples leave the variance and covariance terms 0 (nothing
  kept: the value is 0); a static batch of one is a ``ValueError``.
  Identical embeddings (zero variance) give finite values and gradients
  (the :math:`\epsilon` under the square root).

  Args:
    z_a: ``[batch, dim]`` embeddings of the first view.
    z_b: ``[batch, dim]`` embeddings of the second view.
    invariance_weight: :math:`\lambda`, the weight of the mean squared error
      (the official code's ``sim_coeff``, 25).
    variance_weight: :math:`\mu` (``std_coeff``, 25).
    covariance_weight: :math:`\nu` (``cov_coeff``, 1).
    gamma: :math:`\gamma`, the target standard deviation (1).
    eps: :math:`\epsilon > 0` added to the variance (1e-4).
    where: optional ``[batch]`` mask of the examples that take part.

  Returns:
    A scalar.

  Matches facebookresearch/vicreg ``main_vicreg.py`` (``VICReg.forward``
  with ``off_diagonal``; it gathers the embeddings of every GPU for the
  variance and covariance but averages the invariance term per GPU, which
  over equal shards is the same) and lightly's ``VICRegLoss``. Inputs up to
  about 1e9 in float32 (the covariance penalty is quartic in them). Over a
  batch sharded across devices, :func:`jaxloss.distributed.vicreg_loss` is
  this loss of the global batch.

  >>> import jax.numpy as jnp, jaxloss
  >>> z_a = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
  >>> z_b = jnp.array([[1.0, 0.5], [0.0, 1.0], [1.0, 0.0], [0.0, 0.5]])
  >>> print(f"{jaxloss.vicreg_loss(z_a, z_b):.4f}")
  16.3360

  References:
    Bardes et al., `VICReg: Variance-Invariance-Covariance Regularization
    for Self-Supervised Learning <https://arxiv.org/abs/2105.04906>`_, 2022.
  """
  checks.positive("eps", eps)
  checks.nonnegative("invariance_weight", invariance_weight)
  checks.nonnegative("variance_weight", variance_weight)
  checks.nonnegative("covariance_weight", covariance_weight)
  a, b, keep = check_views(z_a, z_b, where)
  check_batch("z_a", a, "its variances divide by N - 1")
  return vicreg_value(
    a,
    b,
    keep,
    invariance_weight,
    variance_weight,
    covariance_weight,
    gamma,
    eps,
  )
