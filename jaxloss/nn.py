"""Flax NNX modules for losses with learnable parts.

Each module holds the learnable parameters of a loss (class centres, proxies,
a temperature, a scale and a bias, task variances) and calls the functional
loss in :mod:`jaxloss`, so the maths lives in one place. Unlike the functions,
whose default is ``reduction="none"``, the modules return the training loss:
their default is ``reduction="mean"`` (pass ``"none"`` for per-example values).

Put a loss module inside your model and train both together; with
:func:`jaxloss.train.nnx_step` and ``nnx.Optimizer(model, tx, wrt=nnx.Param)``
its parameters are updated with the model's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from jaxloss import contrastive, metric_learning
from jaxloss._core import numerics
from jaxloss._core.chunking import ChunkSize
from jaxloss._core.reduction import Reduction

__all__ = [
  "GE2E",
  "ArcFace",
  "CenterLoss",
  "CosFace",
  "LargeMarginSoftmax",
  "LearnedScaleBias",
  "LearnedTemperature",
  "ProxyAnchor",
  "ProxyNCA",
  "SoftTriple",
  "SphereFace",
  "SubCenterArcFace",
  "UncertaintyWeighting",
]


def _unit(x: ArrayLike) -> jax.Array:
  """L2-normalised rows, ``x / max(‖x‖, 1e-12)`` (a zero row stays zero)."""
  return numerics.l2_normalize(numerics.upcast(jnp.asarray(x)))


def _table(
  rngs: nnx.Rngs, rows: int, columns: int, dtype: DTypeLike
) -> nnx.Param:
  """A ``[rows, columns]`` parameter drawn from a standard normal."""
  return nnx.Param(jax.random.normal(rngs.params(), (rows, columns), dtype))


class _CosineHead(nnx.Module):
  """Class centres ``[num_classes, num_features]`` and their cosine logits."""

  def __init__(
    self,
    num_features: int,
    num_classes: int,
    *,
    scale: float,
    margin: float,
    rngs: nnx.Rngs,
    param_dtype: DTypeLike = jnp.float32,
  ):
    self.centers = _table(rngs, num_classes, num_features, param_dtype)
    self.scale = scale
    self.margin = margin

  def logits(self, embeddings: ArrayLike) -> jax.Array:
    """Cosines ``[..., num_classes]`` between embeddings and class centres
    (no margin, no scale): ``argmax`` gives the predicted class."""
    cosines = jnp.matmul(_unit(embeddings), _unit(self.centers[...]).T)
    return jnp.clip(cosines, -1, 1)  # rounding can leave |cos| just above 1


class ArcFace(_CosineHead):
  r"""ArcFace head: learned class centres and an additive angular margin.

  .. math::
    \cos\theta_{ic} = \frac{x_i \cdot W_c}{\|x_i\| \|W_c\|}, \qquad
    \ell_i = \mathrm{arcface}(\cos\theta_i, y_i;\ s, m)

  The centres ``W`` are normalised at every call; the loss is
  :func:`jaxloss.arcface_loss` on the cosines.

  Args:
    num_features: embedding size ``dim``.
    num_classes: number of classes ``C``.
    scale: the logit scale ``s``.
    margin: the angular margin ``m`` (radians).
    easy_margin: ArcFace's easy-margin variant.
    rngs: ``nnx.Rngs`` with a ``params`` stream (centres ~ N(0, 1)).
    param_dtype: dtype of the centres.

  Calling ``head(embeddings, labels)`` with ``[batch, dim]`` embeddings and
  ``[batch]`` integer labels returns the loss (a scalar for the default
  ``reduction="mean"``; ``where``, ``weights`` and ``reduction`` as in
  :func:`jaxloss.reduce`). ``head.logits(embeddings)`` gives the
  ``[batch, C]`` cosines, for accuracy.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> from flax import nnx
  >>> head = jl.nn.ArcFace(4, 3, scale=16.0, rngs=nnx.Rngs(0))
  >>> x, y = jnp.ones((2, 4)), jnp.array([0, 2])
  >>> loss = head(x, y)
  >>> bool(jnp.allclose(loss, jl.arcface_loss(head.logits(x), y, scale=16.0,
  ...                                         reduction="mean")))
  True
  >>> head.logits(x).shape
  (2, 3)

  References:
    Deng, Guo, Xue and Zafeiriou, `ArcFace: Additive Angular Margin Loss for
    Deep Face Recognition <https://arxiv.org/abs/1801.07698>`_, 2019.
  """

  def __init__(
    self,
    num_features: int,
    num_classes: int,
    *,
    scale: float = 64.0,
    margin: float = 0.5,
    easy_margin: bool = False,
    rngs: nnx.Rngs,
    param_dtype: DTypeLike = jnp.float32,
  ):
    super().__init__(
      num_features,
      num_classes,
      scale=scale,
      margin=margin,
      rngs=rngs,
      param_dtype=param_dtype,
    )
    self.easy_margin = easy_margin

  def __call__(
    self,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    return metric_learning.arcface_loss(
      self.logits(embeddings),
      labels,
      scale=self.scale,
      margin=self.margin,
      easy_margin=self.easy_margin,
      where=where,
      weights=weights,
      reduction=reduction,
    )


class CosFace(_CosineHead):
  r"""CosFace head: learned class centres and an additive cosine margin.

  .. math::
    \ell_i = -\log \frac{e^{s(\cos\theta_{iy} - m)}}
                        {e^{s(\cos\theta_{iy} - m)}
                         + \sum_{c \ne y} e^{s \cos\theta_{ic}}}

  with the cosines of :class:`ArcFace`; the loss is
  :func:`jaxloss.cosface_loss`.

  Args:
    num_features: embedding size ``dim``.
    num_classes: number of classes ``C``.
    scale: the logit scale ``s``.
    margin: the cosine margin ``m``.
    rngs: ``nnx.Rngs`` with a ``params`` stream (centres ~ N(0, 1)).
    param_dtype: dtype of the centres.

  ``head(embeddings, labels)`` (``[batch, dim]``, ``[batch]``) returns the
  loss, default ``reduction="mean"``; ``head.logits(embeddings)`` the
  ``[batch, C]`` cosines.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> from flax import nnx
  >>> head = jl.nn.CosFace(4, 3, rngs=nnx.Rngs(0))
  >>> head(jnp.ones((2, 4)), jnp.array([0, 2])).shape
  ()

  References:
    Wang, Wang, Zhou, Ji, Gong, Zhou, Li and Liu, `CosFace: Large Margin
    Cosine Loss for Deep Face Recognition
    <https://arxiv.org/abs/1801.09414>`_, 2018.
  """

  def __init__(
    self,
    num_features: int,
    num_classes: int,
    *,
    scale: float = 64.0,
    margin: float = 0.35,
    rngs: nnx.Rngs,
    param_dtype: DTypeLike = jnp.float32,
  ):
    super().__init__(
      num_features,
      num_classes,
      scale=scale,
      margin=margin,
      rngs=rngs,
      param_dtype=param_dtype,
    )

  def __call__(
    self,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    return metric_learning.cosface_loss(
      self.logits(embeddings),
      labels,
      scale=self.scale,
      margin=self.margin,
      where=where,
      weights=weights,
      reduction=reduction,
    )


class ProxyNCA(nnx.Module):
  r"""Proxy-NCA with learned proxies, one per class.

  .. math::
    \ell_i = -\log \frac{\exp(-\|\hat x_i - \hat p_{y_i}\|^2 / T)}
                        {\sum_c \exp(-\|\hat x_i - \hat p_c\|^2 / T)}

  With ``normalize=True`` (the paper's setting) embeddings and proxies are
  L2-normalised (``x̂``, ``p̂``) before :func:`jaxloss.proxy_nca_loss`.

  Args:
    num_features: embedding size ``dim``.
    num_classes: number of classes ``C``.
    temperature: ``T > 0``.
    normalize: normalise embeddings and proxies first.
    rngs: ``nnx.Rngs`` with a ``params`` stream (proxies ~ N(0, 1)).
    param_dtype: dtype of the proxies.

  ``head(embeddings, labels)`` (``[batch, dim]``, ``[batch]``) returns the
  loss, default ``reduction="mean"``.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> from flax import nnx
  >>> head = jl.nn.ProxyNCA(4, 3, rngs=nnx.Rngs(0))
  >>> head.proxies.shape
  (3, 4)
  >>> head(jnp.ones((2, 4)), jnp.array([0, 2])).shape
  ()

  References:
    Movshovitz-Attias, Toshev, Leung, Ioffe and Singh, `No Fuss Distance
    Metric Learning using Proxies <https://arxiv.org/abs/1703.07464>`_, 2017.
  """

  def __init__(
    self,
    num_features: int,
    num_classes: int,
    *,
    temperature: float = 1.0,
    normalize: bool = True,
    rngs: nnx.Rngs,
    param_dtype: DTypeLike = jnp.float32,
  ):
    self.proxies = _table(rngs, num_classes, num_features, param_dtype)
    self.temperature = temperature
    self.normalize = normalize

  def __call__(
    self,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    proxies = self.proxies[...]
    if self.normalize:
      embeddings, proxies = _unit(embeddings), _unit(proxies)
    return metric_learning.proxy_nca_loss(
      embeddings,
      labels,
      proxies,
      temperature=self.temperature,
      where=where,
      weights=weights,
      reduction=reduction,
    )


class LearnedTemperature(nnx.Module):
  r"""CLIP's contrastive loss with a learned temperature.

  .. math::
    t = \min\big(e^{\log t}, t_{\max}\big), \qquad
    \ell = \mathrm{clip\_loss}(x, y;\ \tau = 1/t)

  The parameter is the log-scale ``log t``, initialised to ``log(1/0.07)``;
  the scale is capped at ``t_max = 100`` as in CLIP. CLIP's training code
  clamps the parameter itself after each step; here the cap is applied in
  the forward pass, which gives the same values, but above the cap the
  log-scale receives no gradient (it stays where it is).

  Args:
    init_scale: the initial scale ``t`` (``1/τ``).
    max_scale: the cap ``t_max``.
    normalize, chunk_size: passed to :func:`jaxloss.clip_loss`.

  ``loss(image_embeddings, text_embeddings)`` (both ``[batch, dim]``) returns
  :func:`jaxloss.clip_loss` at ``temperature = 1 / t``, default
  ``reduction="mean"``. ``loss.scale()`` is the current ``t``.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> loss = jl.nn.LearnedTemperature()
  >>> round(float(loss.scale()), 4)
  14.2857
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> bool(jnp.allclose(loss(x, x), jl.clip_loss(x, x, temperature=0.07,
  ...                                             reduction="mean")))
  True

  References:
    Radford et al., `Learning Transferable Visual Models From Natural
    Language Supervision <https://arxiv.org/abs/2103.00020>`_, 2021.
  """

  def __init__(
    self,
    *,
    init_scale: float = 1 / 0.07,
    max_scale: float = 100.0,
    normalize: bool = True,
    chunk_size: ChunkSize = "auto",
  ):
    self.log_scale = nnx.Param(jnp.asarray(math.log(init_scale), jnp.float32))
    self.max_scale = max_scale
    self.normalize = normalize
    self.chunk_size = chunk_size

  def scale(self) -> jax.Array:
    """The scale ``t = min(exp(log t), t_max)``."""
    return jnp.exp(jnp.minimum(self.log_scale[...], math.log(self.max_scale)))

  def __call__(
    self,
    image_embeddings: ArrayLike,
    text_embeddings: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    return contrastive.clip_loss(
      image_embeddings,
      text_embeddings,
      temperature=1 / self.scale(),
      normalize=self.normalize,
      chunk_size=self.chunk_size,
      where=where,
      weights=weights,
      reduction=reduction,
    )


class LearnedScaleBias(nnx.Module):
  r"""SigLIP's sigmoid loss with a learned scale and bias.

  .. math::
    t = e^{t'}, \qquad
    \ell_i = -\sum_j \log\sigma\big(z_{ij}(t\, \hat x_i \cdot \hat y_j + b)\big)

  The parameters are the log-scale ``t'`` (initialised to ``log 10``) and the
  bias ``b`` (initialised to ``−10``), SigLIP's initialisation; the loss is
  :func:`jaxloss.siglip_loss`.

  Args:
    init_scale: the initial scale ``t``.
    init_bias: the initial bias ``b``.
    normalize, chunk_size: passed to :func:`jaxloss.siglip_loss`.

  ``loss(image_embeddings, text_embeddings)`` (both ``[batch, dim]``) returns
  the loss, default ``reduction="mean"`` (big_vision's ``/ batch``).

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> loss = jl.nn.LearnedScaleBias()
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> bool(jnp.allclose(loss(x, x), jl.siglip_loss(x, x, reduction="mean")))
  True

  References:
    Zhai, Mustafa, Kolesnikov and Beyer, `Sigmoid Loss for Language Image
    Pre-Training <https://arxiv.org/abs/2303.15343>`_, 2023.
  """

  def __init__(
    self,
    *,
    init_scale: float = 10.0,
    init_bias: float = -10.0,
    normalize: bool = True,
    chunk_size: ChunkSize = "auto",
  ):
    self.log_scale = nnx.Param(jnp.asarray(math.log(init_scale), jnp.float32))
    self.bias = nnx.Param(jnp.asarray(init_bias, jnp.float32))
    self.normalize = normalize
    self.chunk_size = chunk_size

  def __call__(
    self,
    image_embeddings: ArrayLike,
    text_embeddings: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    return contrastive.siglip_loss(
      image_embeddings,
      text_embeddings,
      logit_scale=jnp.exp(self.log_scale[...]),
      logit_bias=self.bias[...],
      normalize=self.normalize,
      chunk_size=self.chunk_size,
      where=where,
      weights=weights,
      reduction=reduction,
    )


class GE2E(nnx.Module):
  r"""The GE2E speaker-verification loss with its learned ``w > 0`` and ``b``.

  .. math::
    S_{ji,k} = \max(w, w_{\min}) \cos(e_{ji}, c_k) + b

  then :func:`jaxloss.ge2e_loss`. ``w`` starts at 10 and ``b`` at −5 (the
  paper's initialisation); ``w`` is kept positive by clamping it at
  ``w_min = 1e-6`` in the forward pass (below the clamp its gradient is 0).
  ``b`` cancels in the softmax variant (its gradient is 0 there); it matters
  for ``"contrast"``.

  Args:
    init_w: the initial ``w``.
    init_b: the initial ``b``.
    method: ``"softmax"`` or ``"contrast"``.
    min_w: the clamp ``w_min > 0``.

  ``loss(embeddings)`` with ``[speakers, utterances, dim]`` embeddings
  returns the loss, default ``reduction="mean"``.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> e = jnp.array([[[1.0, 0.0], [2.0, 0.0]], [[0.0, 1.0], [0.0, 3.0]]])
  >>> bool(jnp.allclose(jl.nn.GE2E()(e), jl.ge2e_loss(e, reduction="mean")))
  True

  References:
    Wan, Wang, Papir and Lopez Moreno, `Generalized End-to-End Loss for
    Speaker Verification <https://arxiv.org/abs/1710.10467>`_, 2018.
  """

  def __init__(
    self,
    *,
    init_w: float = 10.0,
    init_b: float = -5.0,
    method: Literal["softmax", "contrast"] = "softmax",
    min_w: float = 1e-6,
  ):
    self.w = nnx.Param(jnp.asarray(init_w, jnp.float32))
    self.b = nnx.Param(jnp.asarray(init_b, jnp.float32))
    self.method = method
    self.min_w = min_w

  def __call__(
    self,
    embeddings: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    return metric_learning.ge2e_loss(
      embeddings,
      w=jnp.maximum(self.w[...], self.min_w),
      b=self.b[...],
      method=self.method,
      where=where,
      weights=weights,
      reduction=reduction,
    )


_KINDS = ("regression", "classification")


class UncertaintyWeighting(nnx.Module):
  r"""Multi-task loss weighted by learned homoscedastic uncertainties.

  With one learned log-variance ``s_i = log σ_i²`` per task (initialised to
  0, i.e. σ² = 1):

  .. math::
    L = \sum_{i \in \text{regression}} \big(\tfrac12 e^{-s_i} L_i
                                          + \tfrac12 s_i\big)
      + \sum_{i \in \text{classification}} \big(e^{-s_i} L_i
                                              + \tfrac12 s_i\big)

  Kendall et al.'s equation (7) for a Gaussian likelihood (``L_i`` the
  squared error: ``1/(2σ²) L + log σ``) and their approximation (10) for a
  softmax likelihood (``1/σ² L + log σ``), written in ``s = log σ²`` so the
  loss is finite for every ``s``. For a regression task the minimum over
  ``s_i`` is at ``σ_i² = L_i``: the learned variance estimates the task's
  mean squared error. (The simplified form ``Σ e^{-s_i} L_i + s_i`` found in
  many implementations is twice the regression form.)

  Args:
    tasks: task names (all regression), or a mapping ``name -> kind`` with
      kind ``"regression"`` or ``"classification"``.

  ``weighting(losses)`` takes a mapping ``name -> scalar loss`` with exactly
  the task names and returns the scalar ``L``. ``variances()`` gives
  ``{name: σ_i²}``.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> weighting = jl.nn.UncertaintyWeighting(["depth", "normals"])
  >>> float(weighting({"depth": jnp.asarray(2.0), "normals": jnp.asarray(4.0)}))
  3.0

  References:
    Kendall, Gal and Cipolla, `Multi-Task Learning Using Uncertainty to Weigh
    Losses for Scene Geometry and Semantics
    <https://arxiv.org/abs/1705.07115>`_, 2018.
  """

  def __init__(self, tasks: Sequence[str] | Mapping[str, str]):
    kinds = (
      dict(tasks)
      if isinstance(tasks, Mapping)
      else {name: "regression" for name in tasks}
    )
    for name, kind in kinds.items():
      if kind not in _KINDS:
        raise ValueError(
          f"UncertaintyWeighting: task {name!r} has kind "
          f"{kind!r}; valid kinds are {_KINDS}."
        )
    if not kinds:
      raise ValueError(
        "UncertaintyWeighting: `tasks` must name at least one task."
      )
    self.names = tuple(kinds)
    self.kinds = tuple(kinds.values())
    self.log_variances = nnx.Param(jnp.zeros(len(kinds), jnp.float32))

  def variances(self) -> dict[str, jax.Array]:
    """``{name: σ²}``, the learned variances."""
    variances = jnp.exp(self.log_variances[...])
    return {name: variances[i] for i, name in enumerate(self.names)}

  def __call__(self, losses: Mapping[str, ArrayLike]) -> jax.Array:
    if set(losses) != set(self.names):
      raise ValueError(
        f"UncertaintyWeighting: `losses` must have the keys "
        f"{sorted(self.names)}, got {sorted(losses)}."
      )
    total = jnp.zeros((), jnp.float32)
    for i, (name, kind) in enumerate(zip(self.names, self.kinds)):
      s = self.log_variances[i]
      factor = 0.5 if kind == "regression" else 1.0
      total = total + factor * jnp.exp(-s) * jnp.asarray(losses[name]) + 0.5 * s
    return total


# ---- issue 22: Proxy-Anchor, SoftTriple, sub-center ArcFace ------------------


class ProxyAnchor(nnx.Module):
  r"""Proxy-Anchor with learned proxies, one per class.

  .. math::
    \mathcal{L} = \frac{1}{|P^+|} \sum_{c \in P^+} \log\Big(1
        + \sum_{i:\, y_i = c} e^{-\alpha (s_{ic} - \delta)}\Big)
      + \frac{1}{C} \sum_{c} \log\Big(1
        + \sum_{i:\, y_i \ne c} e^{\alpha (s_{ic} + \delta)}\Big)

  the loss of :func:`jaxloss.proxy_anchor_loss` (which normalises the
  embeddings and the proxies) on the learned proxies.

  Args:
    num_features: embedding size ``dim``.
    num_classes: number of classes ``C``.
    margin: the margin ``δ``.
    alpha: the scale ``α``.
    rngs: ``nnx.Rngs`` with a ``params`` stream (proxies ~ N(0, 1); only
      their directions matter).
    param_dtype: dtype of the proxies.

  ``head(embeddings, labels)`` (``[batch, dim]``, ``[batch]``) returns the
  loss, a batch-level scalar (``where`` and ``weights`` as in
  :func:`jaxloss.proxy_anchor_loss`); ``head.logits(embeddings)`` the
  ``[batch, C]`` cosines to the proxies, for accuracy.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> from flax import nnx
  >>> head = jl.nn.ProxyAnchor(4, 3, rngs=nnx.Rngs(0))
  >>> x, y = jnp.ones((2, 4)), jnp.array([0, 2])
  >>> bool(jnp.allclose(head(x, y),
  ...                   jl.proxy_anchor_loss(x, y, head.proxies[...])))
  True
  >>> head.logits(x).shape
  (2, 3)

  References:
    Kim, Kim, Cho and Kwak, `Proxy Anchor Loss for Deep Metric Learning
    <https://arxiv.org/abs/2003.13911>`_, 2020.
  """

  def __init__(
    self,
    num_features: int,
    num_classes: int,
    *,
    margin: float = 0.1,
    alpha: float = 32.0,
    rngs: nnx.Rngs,
    param_dtype: DTypeLike = jnp.float32,
  ):
    self.proxies = _table(rngs, num_classes, num_features, param_dtype)
    self.margin = margin
    self.alpha = alpha

  def logits(self, embeddings: ArrayLike) -> jax.Array:
    """Cosines ``[..., num_classes]`` between embeddings and proxies."""
    cosines = jnp.matmul(_unit(embeddings), _unit(self.proxies[...]).T)
    return jnp.clip(cosines, -1, 1)

  def __call__(
    self,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    return metric_learning.proxy_anchor_loss(
      embeddings,
      labels,
      self.proxies[...],
      margin=self.margin,
      alpha=self.alpha,
      where=where,
      weights=weights,
      reduction=reduction,
    )


class _MultiCenterHead(nnx.Module):
  """``[num_classes, centers_per_class, num_features]`` learned centres and
  the cosines of embeddings to each of them."""

  def __init__(
    self,
    num_features: int,
    num_classes: int,
    centers_per_class: int,
    *,
    rngs: nnx.Rngs,
    param_dtype: DTypeLike,
  ):
    table = _table(
      rngs, num_classes * centers_per_class, num_features, param_dtype
    )
    self.centers = nnx.Param(
      table[...].reshape(num_classes, centers_per_class, num_features)
    )

  def cosines(self, embeddings: ArrayLike) -> jax.Array:
    """Cosines ``[..., num_classes, centers_per_class]`` between the
    embeddings and every centre, clipped to [−1, 1]."""
    cosines = jnp.einsum(
      "...d,ckd->...ck", _unit(embeddings), _unit(self.centers[...])
    )
    return jnp.clip(cosines, -1, 1)


class SoftTriple(_MultiCenterHead):
  r"""SoftTriple head: several learned centres per class.

  .. math::
    S_{ic} = \sum_k \operatorname{softmax}_k(\cos\theta_{ick} / \gamma)
             \cos\theta_{ick}, \qquad
    \ell_i = \mathrm{CE}\big(\lambda (S_i - \delta e_{y_i}), y_i\big)

  the loss of :func:`jaxloss.soft_triple_loss` on the cosines to the
  normalised centres.

  Args:
    num_features: embedding size ``dim``.
    num_classes: number of classes ``C``.
    centers_per_class: ``K`` (pytorch-metric-learning's default 10).
    scale: ``λ`` (pytorch-metric-learning's ``la``).
    gamma: the temperature ``γ`` of the soft maximum over centres.
    margin: ``δ``.
    rngs: ``nnx.Rngs`` with a ``params`` stream (centres ~ N(0, 1)).
    param_dtype: dtype of the centres.

  ``head(embeddings, labels)`` returns the loss, default
  ``reduction="mean"``; ``head.cosines(embeddings)`` the ``[batch, C, K]``
  cosines and ``head.logits(embeddings)`` the ``[batch, C]`` class
  similarities ``S``, for accuracy. The paper's regulariser that merges
  similar centres is not included (pytorch-metric-learning leaves it out
  too).

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> from flax import nnx
  >>> head = jl.nn.SoftTriple(4, 3, centers_per_class=2, rngs=nnx.Rngs(0))
  >>> head.centers.shape
  (3, 2, 4)
  >>> x, y = jnp.ones((2, 4)), jnp.array([0, 2])
  >>> bool(jnp.allclose(head(x, y), jl.soft_triple_loss(
  ...     head.cosines(x), y, reduction="mean")))
  True

  References:
    Qian, Shang, Sun, Hu, Li and Jin, `SoftTriple Loss: Deep Metric Learning
    Without Triplet Sampling <https://arxiv.org/abs/1909.05235>`_, 2019.
  """

  def __init__(
    self,
    num_features: int,
    num_classes: int,
    *,
    centers_per_class: int = 10,
    scale: float = 20.0,
    gamma: float = 0.1,
    margin: float = 0.01,
    rngs: nnx.Rngs,
    param_dtype: DTypeLike = jnp.float32,
  ):
    super().__init__(
      num_features,
      num_classes,
      centers_per_class,
      rngs=rngs,
      param_dtype=param_dtype,
    )
    self.scale = scale
    self.gamma = gamma
    self.margin = margin

  def logits(self, embeddings: ArrayLike) -> jax.Array:
    """The class similarities ``S`` ``[..., num_classes]`` (no margin, no
    scale): ``argmax`` gives the predicted class."""
    return metric_learning.proxies.soft_triple_similarities(
      self.cosines(embeddings), self.gamma
    )

  def __call__(
    self,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    return metric_learning.soft_triple_loss(
      self.cosines(embeddings),
      labels,
      scale=self.scale,
      gamma=self.gamma,
      margin=self.margin,
      where=where,
      weights=weights,
      reduction=reduction,
    )


class SubCenterArcFace(_MultiCenterHead):
  r"""Sub-center ArcFace head: ``K`` learned sub-centres per class and an
  additive angular margin on the closest one.

  .. math::
    \cos\theta_{ic} = \max_k \frac{x_i \cdot W_{ck}}
                                   {\|x_i\| \|W_{ck}\|}, \qquad
    \ell_i = \mathrm{arcface}(\cos\theta_i, y_i;\ s, m)

  the loss of :func:`jaxloss.sub_center_arcface_loss` on the cosines.

  Args:
    num_features: embedding size ``dim``.
    num_classes: number of classes ``C``.
    sub_centers: ``K`` (the paper's and pytorch-metric-learning's 3).
    scale: the logit scale ``s``.
    margin: the angular margin ``m`` (radians).
    easy_margin: ArcFace's easy-margin variant.
    rngs: ``nnx.Rngs`` with a ``params`` stream (sub-centres ~ N(0, 1)).
    param_dtype: dtype of the sub-centres.

  ``head(embeddings, labels)`` returns the loss, default
  ``reduction="mean"``; ``head.cosines(embeddings)`` the ``[batch, C, K]``
  cosines and ``head.logits(embeddings)`` the ``[batch, C]`` closest
  sub-centre's cosines, for accuracy.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> from flax import nnx
  >>> head = jl.nn.SubCenterArcFace(4, 3, scale=16.0, rngs=nnx.Rngs(0))
  >>> head.centers.shape
  (3, 3, 4)
  >>> x, y = jnp.ones((2, 4)), jnp.array([0, 2])
  >>> bool(jnp.allclose(head(x, y), jl.sub_center_arcface_loss(
  ...     head.cosines(x), y, scale=16.0, reduction="mean")))
  True

  References:
    Deng, Guo, Liu, Zafeiriou and Zafeiriou, `Sub-center ArcFace: Boosting
    Face Recognition by Large-Scale Noisy Web Faces
    <https://doi.org/10.1007/978-3-030-58621-8_43>`_, 2020.
  """

  def __init__(
    self,
    num_features: int,
    num_classes: int,
    *,
    sub_centers: int = 3,
    scale: float = 64.0,
    margin: float = 0.5,
    easy_margin: bool = False,
    rngs: nnx.Rngs,
    param_dtype: DTypeLike = jnp.float32,
  ):
    super().__init__(
      num_features,
      num_classes,
      sub_centers,
      rngs=rngs,
      param_dtype=param_dtype,
    )
    self.scale = scale
    self.margin = margin
    self.easy_margin = easy_margin

  def logits(self, embeddings: ArrayLike) -> jax.Array:
    """The closest sub-centre's cosine ``[..., num_classes]`` (no margin, no
    scale): ``argmax`` gives the predicted class."""
    return jnp.max(self.cosines(embeddings), axis=-1)

  def __call__(
    self,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    return metric_learning.sub_center_arcface_loss(
      self.cosines(embeddings),
      labels,
      scale=self.scale,
      margin=self.margin,
      easy_margin=self.easy_margin,
      where=where,
      weights=weights,
      reduction=reduction,
    )


# --------------------------------------------------------------------------- #
# Issue 22 §5: center loss, SphereFace, L-Softmax.


class CenterLoss(nnx.Module):
  r"""Center loss with its class centres held as state.

  .. math::
    \ell_i = \tfrac12 \|x_i - c_{y_i}\|^2, \qquad
    c_j \leftarrow c_j - \alpha
      \frac{\sum_i \delta(y_i = j)(c_j - x_i)}{1 + \sum_i \delta(y_i = j)}

  The centres ``[num_classes, num_features]`` start at 0 and are an
  ``nnx.BatchStat`` (state, not an ``nnx.Param``): an optimizer built with
  ``wrt=nnx.Param`` leaves them alone, and each call with ``update=True``
  (the default) computes :func:`jaxloss.center_loss` with the current
  centres, then replaces them with :func:`jaxloss.update_centers` of the
  batch (embeddings with their gradient stopped), the paper's order. Under
  ``nnx.jit`` / ``nnx.value_and_grad`` the update is carried out of the
  step like a batch-norm statistic. Pass ``update=False`` to evaluate.

  Args:
    num_features: embedding size ``dim``.
    num_classes: number of classes ``C``.
    alpha: the centres' learning rate ``α``.
    dtype: dtype of the centres.

  ``loss(embeddings, labels)`` (``[batch, dim]``, ``[batch]``) returns the
  loss, default ``reduction="mean"``; the paper's term is ``λ`` times the
  ``"sum"``.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> loss = jl.nn.CenterLoss(2, 3)
  >>> x, y = jnp.array([[2.0, 0.0], [4.0, 0.0]]), jnp.array([0, 0])
  >>> loss(x, y)  # centres at 0: ½ (4 + 16) / 2
  Array(5., dtype=float32)
  >>> loss.centers[...][0]  # 0 − 0.5 · (0 − 6) / 3
  Array([1., 0.], dtype=float32)

  References:
    Wen, Zhang, Li and Qiao, `A Discriminative Feature Learning Approach for
    Deep Face Recognition
    <https://doi.org/10.1007/978-3-319-46478-7_31>`_, 2016.
  """

  def __init__(
    self,
    num_features: int,
    num_classes: int,
    *,
    alpha: float = 0.5,
    dtype: DTypeLike = jnp.float32,
  ):
    self.centers = nnx.BatchStat(jnp.zeros((num_classes, num_features), dtype))
    self.alpha = alpha

  def __call__(
    self,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    update: bool = True,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    centers = self.centers[...]
    value = metric_learning.center_loss(
      embeddings,
      labels,
      centers,
      where=where,
      weights=weights,
      reduction=reduction,
    )
    if update:
      self.centers[...] = metric_learning.update_centers(
        centers,
        jax.lax.stop_gradient(jnp.asarray(embeddings)),
        labels,
        alpha=self.alpha,
        where=where,
      ).astype(centers.dtype)
    return value


class _MultiplicativeMarginHead(nnx.Module):
  """Class weight vectors ``[num_classes, num_features]`` ~ N(0, 1) and an
  integer angular margin; a subclass names its loss in ``_loss``."""

  _loss: Callable[..., jax.Array]

  def __init__(
    self,
    num_features: int,
    num_classes: int,
    *,
    margin: int = 4,
    scale: float = 1.0,
    rngs: nnx.Rngs,
    param_dtype: DTypeLike = jnp.float32,
  ):
    self.centers = _table(rngs, num_classes, num_features, param_dtype)
    self.margin = margin
    self.scale = scale

  def __call__(
    self,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
  ) -> jax.Array:
    return self._loss(
      embeddings,
      labels,
      self.centers[...],
      margin=self.margin,
      scale=self.scale,
      where=where,
      weights=weights,
      reduction=reduction,
    )


class SphereFace(_MultiplicativeMarginHead):
  r"""SphereFace (A-Softmax) head: learned class vectors, normalised, and a
  multiplicative angular margin.

  .. math::
    \ell_i = \mathrm{sphereface}(x_i, y_i, W;\ m, s)

  The loss is :func:`jaxloss.sphereface_loss` with the module's ``centers``
  (``W``, ``[num_classes, num_features]``, ~ N(0, 1)).

  Args:
    num_features: embedding size ``dim``.
    num_classes: number of classes ``C``.
    margin: the integer margin ``m`` (the paper: 4).
    scale: the logit scale ``s``.
    rngs: ``nnx.Rngs`` with a ``params`` stream.
    param_dtype: dtype of the class vectors.

  ``head(embeddings, labels)`` returns the loss, default
  ``reduction="mean"``; ``head.logits(embeddings)`` the ``[batch, C]``
  logits without margin, ``s ‖x‖ cos θ_c``, for accuracy.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> from flax import nnx
  >>> head = jl.nn.SphereFace(4, 3, rngs=nnx.Rngs(0))
  >>> x, y = jnp.ones((2, 4)), jnp.array([0, 2])
  >>> bool(jnp.allclose(head(x, y), jl.sphereface_loss(
  ...     x, y, head.centers[...], reduction="mean")))
  True

  References:
    Liu, Wen, Yu, Li, Raj and Song, `SphereFace: Deep Hypersphere Embedding
    for Face Recognition <https://arxiv.org/abs/1704.08063>`_, 2017.
  """

  _loss = staticmethod(metric_learning.sphereface_loss)

  def logits(self, embeddings: ArrayLike) -> jax.Array:
    """``s ‖x‖ cos θ_c``, ``[..., num_classes]``."""
    x = numerics.upcast(jnp.asarray(embeddings))
    return self.scale * jnp.matmul(x, _unit(self.centers[...]).T)


class LargeMarginSoftmax(_MultiplicativeMarginHead):
  r"""L-Softmax head: a bias-free linear layer's class vectors and a
  multiplicative angular margin.

  .. math::
    \ell_i = \mathrm{lsoftmax}(x_i, y_i, W;\ m, s)

  The loss is :func:`jaxloss.large_margin_softmax_loss` with the module's
  ``centers`` (``W``, ``[num_classes, num_features]``, ~ N(0, 1), not
  normalised).

  Args:
    num_features: embedding size ``dim``.
    num_classes: number of classes ``C``.
    margin: the integer margin ``m``.
    scale: the logit scale ``s``.
    rngs: ``nnx.Rngs`` with a ``params`` stream.
    param_dtype: dtype of the class vectors.

  ``head(embeddings, labels)`` returns the loss, default
  ``reduction="mean"``; ``head.logits(embeddings)`` the ``[batch, C]``
  logits without margin, ``s W x``, for accuracy.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> from flax import nnx
  >>> head = jl.nn.LargeMarginSoftmax(4, 3, margin=2, rngs=nnx.Rngs(0))
  >>> x, y = jnp.ones((2, 4)), jnp.array([0, 2])
  >>> bool(jnp.allclose(head(x, y), jl.large_margin_softmax_loss(
  ...     x, y, head.centers[...], margin=2, reduction="mean")))
  True

  References:
    Liu, Wen, Yu and Yang, `Large-Margin Softmax Loss for Convolutional
    Neural Networks <https://arxiv.org/abs/1612.02295>`_, 2016.
  """

  _loss = staticmethod(metric_learning.large_margin_softmax_loss)

  def logits(self, embeddings: ArrayLike) -> jax.Array:
    """``s W x``, ``[..., num_classes]``."""
    x = numerics.upcast(jnp.asarray(embeddings))
    return self.scale * jnp.matmul(x, numerics.upcast(self.centers[...]).T)
