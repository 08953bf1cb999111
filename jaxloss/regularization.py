"""Weight regularisers over parameter pytrees: L1, L2 and elastic net.

Each takes any pytree of floating arrays (a dict of parameters, a Flax Linen
``params`` collection, ``nnx.state(model, nnx.Param)``) and returns one scalar:
there is no batch axis, so no ``where``, ``weights`` or ``reduction``. The
strength is the caller's (``loss + 1e-4 * l2_regularization(params)``), except
for the elastic net's two coefficients. ``mask`` selects the leaves as in
``optax.masked``, so biases and normalisation scales can be left out.

Every leaf is accumulated in float32 or wider (bfloat16 and float16 leaves are
upcast); the result has the promoted dtype of the leaves (float32 for an empty
selection).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core.loss import loss

__all__ = [
  "elastic_net_regularization",
  "l1_regularization",
  "l2_regularization",
]

Params = Any  # any pytree of floating arrays
Mask = Any  # a pytree of booleans, a callable returning one, or None


def _selected(params: Params, mask: Mask) -> Iterator[jax.Array]:
  """The floating leaves of ``params`` chosen by ``mask``, upcast, with the
  masked-out elements of an array mask set to 0."""
  if callable(mask):
    mask = mask(params)
  pairs: list[tuple[Any, Any, Params]]  # (mask path, mask leaf, subtree)
  if mask is None:
    pairs = [((), True, params)]
  else:
    mask_leaves, mask_def = jax.tree_util.tree_flatten_with_path(mask)
    try:
      subtrees = mask_def.flatten_up_to(params)  # type: ignore[attr-defined]
    except (ValueError, TypeError) as e:
      raise checks.fail(
        "`mask` must have the structure of `params` (or a prefix of it), as "
        f"in optax.masked: {e}"
      ) from None
    pairs = [(path, m, sub) for (path, m), sub in zip(mask_leaves, subtrees)]
  for mask_path, m, subtree in pairs:
    static = isinstance(m, (bool, np.bool_))
    if static and not m:
      continue
    if not static:
      m = jnp.asarray(m)
      if m.dtype != jnp.bool_:
        raise checks.fail(
          f"`mask` leaves must be booleans (or boolean arrays), got "
          f"{m.dtype} at {jax.tree_util.keystr(mask_path)}.",
          TypeError,
        )
    for path, leaf in jax.tree_util.tree_flatten_with_path(subtree)[0]:
      where = jax.tree_util.keystr(tuple(mask_path) + tuple(path)) or "the root"
      leaf = jnp.asarray(leaf)
      if not jnp.issubdtype(leaf.dtype, jnp.floating):
        raise checks.fail(
          f"leaf {where} of `params` has dtype {leaf.dtype}; only floating "
          f"leaves can be regularised: leave it out with `mask` (or pass only "
          f"the parameters, e.g. nnx.state(model, nnx.Param)).",
          TypeError,
        )
      leaf = numerics.upcast(leaf)
      if not static:
        try:
          element_mask = jnp.broadcast_to(m, leaf.shape)
        except ValueError:
          raise checks.fail(
            f"`mask` array of shape {m.shape} at {where} does not broadcast "
            f"to the leaf's shape {leaf.shape}."
          ) from None
        leaf = jnp.where(element_mask, leaf, jnp.zeros((), leaf.dtype))
      yield leaf


def _total(sums: list[jax.Array]) -> jax.Array:
  if not sums:
    return jnp.zeros((), jnp.float32)
  dtype = jnp.result_type(*sums)
  return sum((s.astype(dtype) for s in sums[1:]), sums[0].astype(dtype))


@loss
def l1_regularization(params: Params, *, mask: Mask = None) -> jax.Array:
  r"""L1 norm of a pytree of parameters: the sum of absolute values.

  .. math:: R(w) = \sum_k |w_k|

  The gradient at :math:`w_k = 0` is 0 (the subgradient ``sign(0)``), so an
  exact zero stays put under plain gradient descent.

  Args:
    params: any pytree of floating arrays, e.g. ``nnx.state(model,
      nnx.Param)``.
    mask: ``None`` (every leaf), a pytree of booleans with the structure of
      ``params`` or a prefix of it (``True`` = regularise), or a callable
      ``params -> such a pytree``, as in ``optax.masked``. A boolean array
      leaf masks elements of the leaves it covers.

  Returns:
    A scalar.

  Matches ``sum(p.abs().sum() for p in params)`` in PyTorch.

  >>> import jax.numpy as jnp, jaxloss
  >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array([3.0])}
  >>> print(jaxloss.l1_regularization(params))
  6.0
  >>> print(jaxloss.l1_regularization(params, mask={"w": True, "b": False}))
  3.0

  References:
    Tibshirani, `Regression Shrinkage and Selection via the Lasso
    <https://doi.org/10.1111/j.2517-6161.1996.tb02080.x>`_, 1996.
  """
  return _total(
    [jnp.sum(numerics.safe_abs(w)) for w in _selected(params, mask)]
  )


@loss
def l2_regularization(params: Params, *, mask: Mask = None) -> jax.Array:
  r"""Squared L2 norm of a pytree of parameters (no factor ½).

  .. math:: R(w) = \sum_k w_k^2

  Args:
    params: any pytree of floating arrays, e.g. ``nnx.state(model,
      nnx.Param)``.
    mask: as in :func:`l1_regularization` (``optax.masked``'s convention).

  Returns:
    A scalar.

  Matches ``optax.tree_utils.tree_norm(params, squared=True)`` on the
  selected leaves; its gradient is twice the update of
  ``optax.masked(optax.add_decayed_weights(1.0), mask)``.

  >>> import jax.numpy as jnp, jaxloss
  >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array([3.0])}
  >>> print(jaxloss.l2_regularization(params))
  14.0
  >>> no_bias = lambda p: {k: k != "b" for k in p}
  >>> print(jaxloss.l2_regularization(params, mask=no_bias))
  5.0

  References:
    Hoerl and Kennard, `Ridge Regression: Biased Estimation for Nonorthogonal
    Problems <https://doi.org/10.1080/00401706.1970.10488634>`_, 1970.
  """
  return _total([jnp.sum(jnp.square(w)) for w in _selected(params, mask)])


@loss(l1=value_checks.bounded(0), l2=value_checks.bounded(0))
def elastic_net_regularization(
  params: Params,
  *,
  l1: ArrayLike = 1.0,
  l2: ArrayLike = 1.0,
  mask: Mask = None,
) -> jax.Array:
  r"""Elastic-net penalty: a weighted sum of the L1 norm and squared L2 norm.

  .. math:: R(w) = \lambda_1 \sum_k |w_k| + \lambda_2 \sum_k w_k^2

  Args:
    params: any pytree of floating arrays, e.g. ``nnx.state(model,
      nnx.Param)``.
    l1: :math:`\lambda_1 \ge 0` (may be traced).
    l2: :math:`\lambda_2 \ge 0` (may be traced).
    mask: as in :func:`l1_regularization` (``optax.masked``'s convention).

  Returns:
    A scalar.

  Equals ``l1 * l1_regularization(params) + l2 * l2_regularization(params)``
  (scikit-learn's ``ElasticNet`` writes the same penalty as
  :math:`\alpha\rho\lVert w\rVert_1
  + \tfrac12\alpha(1-\rho)\lVert w\rVert_2^2`).

  >>> import jax.numpy as jnp, jaxloss
  >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array([3.0])}
  >>> print(jaxloss.elastic_net_regularization(params, l1=0.5, l2=0.1))
  4.4

  References:
    Zou and Hastie, `Regularization and Variable Selection via the Elastic
    Net <https://doi.org/10.1111/j.1467-9868.2005.00503.x>`_, 2005.
  """
  checks.nonnegative("l1", l1)
  checks.nonnegative("l2", l2)
  leaves = list(_selected(params, mask))
  l1_sum = _total([jnp.sum(numerics.safe_abs(w)) for w in leaves])
  l2_sum = _total([jnp.sum(jnp.square(w)) for w in leaves])
  return numerics.like(l1, l1_sum) * l1_sum + numerics.like(l2, l2_sum) * l2_sum
