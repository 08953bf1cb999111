"""Conditional flow matching: the path, its loss and the minibatch OT pairing.

Convention (torchcfm's): ``x0`` is the source (noise) at ``t = 0``, ``x1`` the
data at ``t = 1``, and the network's velocity points from noise to data.
diffusers' rectified-flow training (SD3, Flux: ``FlowMatchEulerDiscrete
Scheduler``) runs the other way; the docstrings say how to convert.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

Path = Literal["linear", "lipman"]
PATHS: tuple[str, ...] = get_args(Path)


def _endpoints(
  x0: ArrayLike, x1: ArrayLike, t: ArrayLike
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``x0``, ``x1`` (one shape, ``[batch, ...]``) and ``t`` (a scalar or
  ``[batch]``) in one float dtype, ``t`` shaped to broadcast over the data
  axes."""
  x0, x1 = checks.same_shape_floats(x0=x0, x1=x1)
  checks.min_rank("x0", x0, 1, "a batch axis")
  t = checks.as_float("t", t)
  if t.ndim == 1:
    checks.shape("t", t, (x0.shape[0],), "one time per example")
  elif t.ndim != 0:
    raise checks.fail(
      f"argument `t` must be a scalar or have shape ({x0.shape[0]},) (one "
      f"time per example), got {tuple(t.shape)}."
    )
  dtype = jnp.result_type(x0, t)
  t = t.astype(dtype).reshape(t.shape + (1,) * (x0.ndim - t.ndim))
  return x0.astype(dtype), x1.astype(dtype), t


def _path_options(path: str, sigma_min: ArrayLike) -> None:
  checks.option("path", path, PATHS)
  checks.in_unit_interval("sigma_min", sigma_min)
  if path != "lipman" and not (
    checks.is_static_number(sigma_min) and sigma_min == 0
  ):
    raise checks.fail(
      f"`sigma_min` is used only by path='lipman', got sigma_min={sigma_min!r}"
      f" with path={path!r}."
    )


def _source_factor(path: str, sigma_min: ArrayLike, dtype) -> jax.Array:
  """The factor of ``x0`` in the path's velocity: 1, or ``1 - sigma_min``."""
  if path == "linear":
    return jnp.ones((), dtype)
  return 1.0 - jnp.asarray(numerics.like(sigma_min, dtype), dtype)


@loss
def flow_matching_path(
  x0: ArrayLike,
  x1: ArrayLike,
  t: ArrayLike,
  *,
  path: Path = "linear",
  sigma: ArrayLike = 0.0,
  sigma_min: ArrayLike = 0.0,
  noise: ArrayLike | None = None,
) -> jax.Array:
  r"""A point ``x_t`` on the conditional flow-matching path from ``x0`` to
  ``x1``.

  .. math::
    \text{linear:}\quad x_t = (1 - t)\,x_0 + t\,x_1 + \sigma\,\varepsilon,
    \qquad
    \text{lipman:}\quad x_t = \big(1 - (1 - \sigma_{\min})\,t\big)\,x_0
      + t\,x_1

  ``x0`` is the source (noise) at ``t = 0`` and ``x1`` the data at
  ``t = 1`` (torchcfm's convention). ``"linear"`` is the rectified-flow /
  I-CFM path, whose optional width :math:`\sigma` adds ``sigma * noise``
  (the noise is given, never drawn here); ``"lipman"`` is Lipman et al.'s
  optimal-transport path, whose source ``x0`` is itself the Gaussian noise
  and which ends at ``t = 1`` with width :math:`\sigma_{\min}`.

  diffusers' SD3 / Flux training writes ``(1 - s) * data + s * noise`` at
  :math:`s` = ``sigmas``: that is ``flow_matching_path(noise, data, 1 - s)``.

  Args:
    x0: ``[batch, ...]`` floating source points (noise).
    x1: ``[batch, ...]`` data points, same shape.
    t: a scalar or ``[batch]`` times in ``[0, 1]`` (may be traced).
    path: ``"linear"`` (default) or ``"lipman"``.
    sigma: width :math:`\sigma \ge 0` of the ``"linear"`` path (may be
      traced); needs ``noise`` unless it is the number 0.
    sigma_min: :math:`\sigma_{\min} \in [0, 1]` of the ``"lipman"`` path (may
      be traced); must be 0 for ``"linear"``.
    noise: ``[batch, ...]`` standard-normal noise :math:`\varepsilon` for
      ``sigma`` (``"linear"`` only), same shape as ``x0``.

  Returns:
    ``[batch, ...]`` the points :math:`x_t`, in the inputs' dtype (float32
    for half precision).

  Matches torchcfm's ``ConditionalFlowMatcher.sample_xt(x0, x1, t,
  epsilon=noise)`` (``"linear"``) and ``TargetConditionalFlowMatcher
  .sample_xt(_, x1, t, epsilon=x0)`` with its ``sigma = sigma_min``
  (``"lipman"``; torchcfm draws that path's source as the epsilon and
  ignores its own ``x0``).

  >>> import jax.numpy as jnp, jaxloss
  >>> x0, x1 = jnp.zeros((2, 2)), jnp.ones((2, 2))
  >>> print(jaxloss.flow_matching_path(x0, x1, jnp.array([0.25, 1.0])))
  [[0.25 0.25]
   [1.   1.  ]]

  References:
    Lipman, Chen, Ben-Hamu, Nickel and Le, `Flow Matching for Generative
    Modeling <https://arxiv.org/abs/2210.02747>`_, 2023.
    Liu, Gong and Liu, `Flow Straight and Fast: Learning to Generate and
    Transfer Data with Rectified Flow <https://arxiv.org/abs/2209.03003>`_,
    2023.
    Tong et al., `Improving and Generalizing Flow-Based Generative Models
    with Minibatch Optimal Transport <https://arxiv.org/abs/2302.00482>`_,
    2024 (reference code: ``atong01/conditional-flow-matching``).
  """
  _path_options(path, sigma_min)
  checks.nonnegative("sigma", sigma)
  x0, x1, t = _endpoints(x0, x1, t)
  x_t = (1.0 - _source_factor(path, sigma_min, x0.dtype) * t) * x0 + t * x1
  if noise is None:
    if not (checks.is_static_number(sigma) and sigma == 0):
      raise checks.fail(
        f"`sigma`={sigma!r} adds sigma * noise to the path: pass `noise`."
      )
    return x_t
  if path != "linear":
    raise checks.fail(
      "`noise` is used only by path='linear' (the 'lipman' path's noise is "
      "`x0`)."
    )
  noise = checks.as_float("noise", noise)
  checks.same_shape(x0=x0, noise=noise)
  return x_t + numerics.like(sigma, x_t.dtype) * noise.astype(x_t.dtype)


@loss
def flow_matching_loss(
  velocity: ArrayLike,
  x0: ArrayLike,
  x1: ArrayLike,
  t: ArrayLike,
  *,
  path: Path = "linear",
  sigma_min: ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Conditional flow matching: the squared error of a velocity against the
  path's target velocity.

  .. math::
    \ell_i = \operatorname{mean}_j \big(v_{ij} - u_{ij}\big)^2, \qquad
    u = \begin{cases} x_1 - x_0 & \text{linear} \\
      x_1 - (1 - \sigma_{\min})\,x_0 & \text{lipman} \end{cases}

  ``velocity`` is the network's output at the point
  :func:`jaxloss.flow_matching_path` ``(x0, x1, t, ...)``; ``x0`` is the
  noise at ``t = 0``, ``x1`` the data at ``t = 1``. Both targets are the
  time derivative of their path, constant in ``t``: ``t`` is checked (a
  scalar or one time per example) but does not enter the value. The
  ``"linear"`` path's optional width :math:`\sigma` moves ``x_t`` but not
  the target. For OT-CFM, pair the batch first with
  :func:`jaxloss.ot_coupling`.

  From diffusers' SD3 / Flux training (``noisy = (1 - s) * data + s *
  noise``, ``target = noise - data``): ``flow_matching_loss(-model_pred,
  noise, data, 1 - s)`` is its per-example loss with ``weighting_scheme=
  "none"`` (the velocity's sign flips with time; pass the SD3 weights as
  ``weights``). At sampling time integrate ``dx/dt = velocity`` from
  ``t = 0`` (noise) to ``t = 1``.

  Args:
    velocity: ``[batch, ...]`` floating predicted velocity
      :math:`v_\theta(x_t, t)`.
    x0: ``[batch, ...]`` the source points (noise), same shape.
    x1: ``[batch, ...]`` the data points, same shape.
    t: a scalar or ``[batch]`` times in ``[0, 1]``.
    path: ``"linear"`` (default; rectified flow, I-CFM) or ``"lipman"``.
    sigma_min: :math:`\sigma_{\min} \in [0, 1]` of the ``"lipman"`` path (may
      be traced); must be 0 for ``"linear"``.
    where, weights, reduction: see :func:`jaxloss.reduce` (a ``[batch]``
      mask drops examples); default ``"none"``.

  Returns:
    ``[batch]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches torchcfm's ``ConditionalFlowMatcher`` (``"linear"``, its
  ``compute_conditional_flow``, at any ``sigma``) and
  ``TargetConditionalFlowMatcher`` (``"lipman"``, whose target
  ``(x1 - (1 - σ) x_t) / (1 - (1 - σ) t)`` equals ``x1 - (1 - σ) x0`` on the
  path; here finite also at ``t = 1`` with ``σ = 0``) with torchcfm's
  training loss ``mean((v - u) ** 2)``, per example; diffusers' flow
  matching after the conversion above.

  >>> import jax.numpy as jnp, jaxloss
  >>> x0, x1 = jnp.zeros((2, 3)), jnp.ones((2, 3))
  >>> v = jnp.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])
  >>> print(jaxloss.flow_matching_loss(v, x0, x1, jnp.array([0.1, 0.9])))
  [0.         0.6666667]

  References:
    Lipman, Chen, Ben-Hamu, Nickel and Le, `Flow Matching for Generative
    Modeling <https://arxiv.org/abs/2210.02747>`_, 2023.
    Liu, Gong and Liu, `Flow Straight and Fast: Learning to Generate and
    Transfer Data with Rectified Flow <https://arxiv.org/abs/2209.03003>`_,
    2023.
    Tong et al., `Improving and Generalizing Flow-Based Generative Models
    with Minibatch Optimal Transport <https://arxiv.org/abs/2302.00482>`_,
    2024 (reference code: ``atong01/conditional-flow-matching``).
  """
  _path_options(path, sigma_min)
  x0, x1, t = _endpoints(x0, x1, t)
  velocity = checks.as_float("velocity", velocity)
  checks.same_shape(velocity=velocity, x0=x0)
  dtype = jnp.result_type(velocity, x0)
  velocity, x0, x1 = velocity.astype(dtype), x0.astype(dtype), x1.astype(dtype)
  target = x1 - _source_factor(path, sigma_min, dtype) * x0
  error = velocity - target
  values = numerics.example_mean(jnp.square(error))
  return reduce(values, reduction, weights=weights, where=where)


@loss
def ot_coupling(
  x0: ArrayLike, x1: ArrayLike, *, epsilon: ArrayLike | None = None
) -> jax.Array:
  r"""Minibatch optimal-transport pairing for OT-CFM: the permutation of
  ``x1`` closest to ``x0`` in squared Euclidean distance.

  .. math::
    \pi = \arg\min_{\pi \in S_n} \sum_i \lVert x_{0,i} - x_{1,\pi(i)}\rVert^2

  ``x1[ot_coupling(x0, x1)]`` is paired with ``x0`` (examples flattened to
  vectors for the cost). With ``epsilon=None`` the assignment is exact
  (ott-jax's Hungarian solver, ``ott.tools.unreg.hungarian``, which runs
  optax's). With ``epsilon > 0`` ott-jax's Sinkhorn solves the entropic
  problem at that (absolute) regularisation and each ``x0[i]`` takes the
  ``x1`` of largest plan entry in its row. That is the exact assignment
  when ``epsilon`` is small against the gaps between the costs, yet large
  enough for Sinkhorn to converge within ott-jax's default 2,000
  iterations; otherwise indices may repeat and some ``x1`` go unused (e.g.
  12 standard-normal points in 2-D: a permutation at ``epsilon`` 0.01-0.03,
  repeats at 0.001, unconverged, and at 0.1 or more). Deterministic: nothing is
  sampled (torchcfm's ``OTPlanSampler.sample_plan`` draws pairs from the
  plan, with replacement). Ties between optimal assignments are broken by
  the solver, deterministically. No gradient flows through the indices.

  Needs ott-jax (``pip install jaxloss[ot]``), imported on the first call.

  Args:
    x0: ``[n, ...]`` floating source points (noise).
    x1: ``[n, ...]`` target points (data), same shape: as many as ``x0``
      (an error otherwise).
    epsilon: ``None`` (default) for the exact assignment, or the entropic
      regularisation :math:`\varepsilon > 0` of the Sinkhorn plan (may be
      traced).

  Returns:
    ``[n]`` int32 indices into ``x1``: a permutation for the exact
    assignment (see above for ``epsilon``).

  Matches torchcfm's ``OTPlanSampler.sample_plan_with_scipy`` (exact:
  ``scipy.optimize.linear_sum_assignment`` on the squared distances, ``x0``
  kept in order) and ``OTPlanSampler(method="exact")``'s plan; equals
  calling ott-jax's solvers directly.

  >>> import jax.numpy as jnp, jaxloss
  >>> x0 = jnp.array([[0.0], [1.0], [2.0]])
  >>> x1 = jnp.array([[2.1], [-0.1], [0.9]])
  >>> print(jaxloss.ot_coupling(x0, x1))
  [1 2 0]

  References:
    Tong et al., `Improving and Generalizing Flow-Based Generative Models
    with Minibatch Optimal Transport <https://arxiv.org/abs/2302.00482>`_,
    2024.
    Pooladian et al., `Multisample Flow Matching: Straightening Flows with
    Minibatch Couplings <https://arxiv.org/abs/2304.14772>`_, 2023.
    Cuturi et al., `Optimal Transport Tools (OTT): A JAX Toolbox for all
    things Wasserstein <https://arxiv.org/abs/2201.12324>`_, 2022.
  """
  if epsilon is not None:
    checks.positive("epsilon", epsilon)
  x0, x1 = checks.floats(x0=x0, x1=x1)
  checks.min_rank("x0", x0, 1, "a batch axis")
  checks.min_rank("x1", x1, 1, "a batch axis")
  if x0.shape[0] != x1.shape[0]:
    raise checks.fail(
      f"`x0` and `x1` must hold as many points (axis 0): an assignment pairs "
      f"each x0 with one x1; got {x0.shape[0]} and {x1.shape[0]}."
    )
  checks.same_shape(x0=x0, x1=x1)
  n = x0.shape[0]
  if n <= 1:
    return jnp.zeros((n,), jnp.int32)
  exact, entropic = _ott_solvers()
  a = jax.lax.stop_gradient(x0).reshape(n, -1)
  b = jax.lax.stop_gradient(x1).reshape(n, -1)
  if epsilon is None:
    return exact(a, b)
  return entropic(a, b, numerics.like(epsilon, a.dtype))


@functools.cache
def _ott_solvers() -> tuple[Callable, Callable]:
  """ott-jax's exact and entropic solvers, imported on the first call and
  jitted once (an eager call of ott's solvers dispatches every step)."""
  try:
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn
    from ott.tools import unreg
  except ImportError as error:
    raise ImportError(
      "ot_coupling needs ott-jax: pip install jaxloss[ot] (or pip install "
      "ott-jax)."
    ) from error

  @jax.jit
  def exact(a: jax.Array, b: jax.Array) -> jax.Array:
    with jax.numpy_rank_promotion("allow"):  # ott-jax relies on it
      _, out = unreg.hungarian(pointcloud.PointCloud(a, b))
    rows, cols = out.paired_indices
    order = jnp.zeros((a.shape[0],), jnp.int32)
    return order.at[rows].set(cols.astype(jnp.int32))

  @jax.jit
  def entropic(a: jax.Array, b: jax.Array, epsilon: jax.Array) -> jax.Array:
    with jax.numpy_rank_promotion("allow"):
      geometry = pointcloud.PointCloud(a, b, epsilon=epsilon)
      problem = linear_problem.LinearProblem(geometry)
      plan = sinkhorn.Sinkhorn()(problem).matrix
    return jnp.argmax(plan, axis=1).astype(jnp.int32)

  return exact, entropic
