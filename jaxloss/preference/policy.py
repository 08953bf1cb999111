"""GRPO: the group-relative policy loss (and its variants: DAPO, Dr. GRPO,
GSPO, CISPO, SAPO, LUSPO, VESPO), its group-normalised advantages, and
Schulman's KL estimators."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss._core import checks, in_batch, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.policy import (
  KL_ESTIMATORS,
  GRPOLossType,
  ImportanceSamplingLevel,
  KLEstimator,
  TokenAveraging,
  grpo_terms,
  kl_estimates,
)
from jaxloss._core.reduction import Reduction, reduce

__all__ = ["group_normalized_advantages", "grpo_loss", "kl_estimate"]


@loss
def group_normalized_advantages(
  rewards: ArrayLike,
  groups: int | ArrayLike,
  *,
  eps: ArrayLike = 1e-4,
  scale: bool = True,
) -> jax.Array:
  r"""GRPO's advantages: each reward relative to the other completions of its
  prompt.

  .. math::
    A_i = \frac{r_i - \operatorname{mean}_{g(i)}(r)}
               {\operatorname{std}_{g(i)}(r) + \varepsilon}
    \quad (\text{or } r_i - \operatorname{mean}_{g(i)}(r) \text{ without
    scaling})

  The standard deviation is the unbiased one (``ddof=1``, as ``torch.std``,
  which trl uses); a group of one completion gets advantage 0.

  Args:
    rewards: ``[batch]`` rewards, one per completion.
    groups: an ``int`` group size ``G`` (the completions of each prompt are
      ``G`` consecutive entries, trl's layout; ``batch`` must be a multiple
      of ``G``), or ``[batch]`` integer group ids (any order).
    eps: :math:`\varepsilon`, added to the standard deviation (trl: 1e-4).
    scale: whether to divide by the group's standard deviation (trl's
      ``scale_rewards``; Dr. GRPO does not).

  Returns:
    ``[batch]`` advantages, in the rewards' (floating) dtype.

  Matches the advantages of trl's ``GRPOTrainer`` (``scale_rewards`` true or
  false).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> rewards = jnp.array([1.0, 0.0, 0.0, 2.0, 2.0, 2.0])
  >>> print(np.round(np.asarray(
  ...     jaxloss.group_normalized_advantages(rewards, 3)), 4))
  [ 1.1545 -0.5773 -0.5773  0.      0.      0.    ]

  References:
    Shao et al., `DeepSeekMath: Pushing the Limits of Mathematical Reasoning
    in Open Language Models <https://arxiv.org/abs/2402.03300>`_, 2024.
  """
  rewards = jnp.asarray(rewards)
  if not jnp.issubdtype(rewards.dtype, jnp.floating):
    rewards = checks.as_targets("rewards", rewards, jnp.zeros((), jnp.float32))
  rewards = numerics.upcast(rewards)
  checks.rank("rewards", rewards, 1)
  checks.nonnegative("eps", eps)
  size = rewards.shape[0]
  if isinstance(groups, (int, np.integer)) and not isinstance(groups, bool):
    groups = int(groups)
    if groups < 1 or size % groups:
      raise checks.fail(
        f"group size {groups} must be >= 1 and divide the batch size {size}."
      )
    grouped = rewards.reshape(size // groups, groups)
    mean = jnp.mean(grouped, axis=1, keepdims=True)
    squares = jnp.sum(jnp.square(grouped - mean), axis=1, keepdims=True)
    count: int | jax.Array = groups
    centred = (grouped - mean).reshape(size)
    squares = jnp.broadcast_to(squares, grouped.shape).reshape(size)
  else:
    ids = checks.as_labels("groups", groups)
    checks.shape("groups", ids, (size,), "group ids, one per reward")
    same = in_batch.same_label(ids).astype(rewards.dtype)
    count = jnp.sum(same, axis=1)
    mean = (same @ rewards) / count
    centred = rewards - mean
    squares = jnp.sum(
      same * jnp.square(rewards[None, :] - mean[:, None]), axis=1
    )
  if not scale:
    return centred
  variance = squares / jnp.maximum(jnp.asarray(count, rewards.dtype) - 1, 1)
  return centred / (numerics.safe_sqrt(variance) + numerics.like(eps, rewards))


@loss(
  log_probs=value_checks.bounded(high=0, mask="where"),
  ref_log_probs=value_checks.bounded(high=0, mask="where"),
)
def kl_estimate(
  log_probs: ArrayLike,
  ref_log_probs: ArrayLike,
  *,
  estimator: KLEstimator = "k3",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Schulman's estimators of :math:`\mathrm{KL}(\pi \,\|\, \pi_\text{ref})`
  from tokens sampled from :math:`\pi`, per token.

  .. math::
    r = \log\pi_\text{ref}(x) - \log\pi(x), \qquad
    k_1 = -r, \qquad k_2 = \tfrac12 r^2, \qquad k_3 = e^{r} - r - 1

  For :math:`x \sim \pi`, :math:`k_1` is unbiased (but takes negative
  values, high variance), :math:`k_2` is biased with low variance (its
  expectation is an f-divergence that agrees with the KL to second order),
  :math:`k_3` is unbiased and :math:`\ge 0` (the one GRPO uses). Elementwise:
  ``log_probs`` ``[..., time]`` gives ``[..., time]`` (one estimate per
  token); ``"mean"`` averages over every unmasked token, ``"sum"`` sums them
  (a sequence's KL estimate is the sum over its tokens). For ``k3``,
  :math:`e^{r}` is bounded (``exp(min(r, log(max)/2))``: finite, gradient 0
  beyond about 1.8e19 in float32) so that a huge ``r`` never gives ``inf``.
  Gradients flow to both arguments (stop ``ref_log_probs``' yourself if it
  is not computed under ``stop_gradient``; it usually is data).

  Args:
    log_probs: ``[...]`` floating log-probabilities :math:`\log\pi(x)` of the
      sampled tokens under the policy (usually ``[..., time]``).
    ref_log_probs: the same shape: :math:`\log\pi_\text{ref}(x)` under the
      reference policy.
    estimator: ``"k1"``, ``"k2"`` or ``"k3"`` (static).
    where: optional boolean mask broadcastable to ``log_probs`` (padding).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``log_probs``' shape for ``"none"``, a scalar otherwise.

  Matches trl 1.16's ``GRPOTrainer._compute_loss`` per-token KL
  (``exp(ref − logp) − (ref − logp) − 1``) for ``"k3"``.

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logp = jnp.log(jnp.array([[0.5, 0.25], [0.8, 0.1]]))
  >>> ref = jnp.log(jnp.array([[0.25, 0.25], [0.4, 0.2]]))
  >>> for k in ("k1", "k2", "k3"):
  ...   print(k, np.round(np.asarray(
  ...       jaxloss.kl_estimate(logp, ref, estimator=k)), 4))
  k1 [[ 0.6931  0.    ]
   [ 0.6931 -0.6931]]
  k2 [[0.2402 0.    ]
   [0.2402 0.2402]]
  k3 [[0.1931 0.    ]
   [0.1931 0.3069]]

  References:
    Schulman, `Approximating KL Divergence
    <http://joschu.net/blog/kl-approx.html>`_, 2020.
  """
  checks.option("estimator", estimator, KL_ESTIMATORS)
  log_probs = checks.as_float("log_probs", log_probs)
  ref = checks.as_float("ref_log_probs", ref_log_probs)
  checks.shape("ref_log_probs", ref, log_probs.shape)
  values = kl_estimates(log_probs, ref.astype(log_probs.dtype), estimator)
  return reduce(values, reduction, weights=weights, where=where)


@loss(
  **{
    arg: value_checks.bounded(high=0, mask="completion_mask")
    for arg in ("log_probs", "old_log_probs", "ref_log_probs")
  }
)
def grpo_loss(
  log_probs: ArrayLike,
  old_log_probs: ArrayLike | None,
  advantages: ArrayLike,
  completion_mask: ArrayLike | None = None,
  ref_log_probs: ArrayLike | None = None,
  *,
  loss_type: GRPOLossType | None = None,
  importance_sampling_level: ImportanceSamplingLevel = "token",
  epsilon: ArrayLike | None = None,
  epsilon_high: ArrayLike | None = None,
  delta: ArrayLike | None = None,
  beta: ArrayLike = 0.04,
  use_bias_correction_kl: bool = False,
  max_completion_length: ArrayLike | None = None,
  sapo_temperature_pos: ArrayLike | None = None,
  sapo_temperature_neg: ArrayLike | None = None,
  vespo_k_pos: ArrayLike | None = None,
  vespo_lambda_pos: ArrayLike | None = None,
  vespo_k_neg: ArrayLike | None = None,
  vespo_lambda_neg: ArrayLike | None = None,
  token_averaging: TokenAveraging | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""GRPO's policy loss and its variants (trl 1.16's ``loss_type``), with
  an optional k3 KL penalty, per completion.

  .. math::
    \rho_{i,t} = e^{\log\pi_{i,t} - \operatorname{sg}(\log\pi^\text{old}_{i,t})}
    \ \ (\text{token}), \qquad
    \rho_{i,t} = e^{\frac{1}{|o_i|}\sum_{s}(\log\pi_{i,s} -
      \operatorname{sg}(\log\pi^\text{old}_{i,s}))}
    \ \ (\text{sequence: GSPO})

  and the per-token loss :math:`\ell_{i,t}` of each ``loss_type`` (the
  advantage :math:`A_i` is data):

  * clipped surrogate (``None``, ``"grpo"``, ``"bnpo"``, ``"dr_grpo"``,
    ``"dapo"``, ``"luspo"``): :math:`-\min\big(\min(\rho, \delta) A,\
    \operatorname{clip}(\rho, 1-\epsilon, 1+\epsilon_\text{high}) A\big)`
    (:math:`\min(\rho, \delta)` only with ``delta``: INTELLECT-2's two-sided
    clipping);
  * ``"cispo"``: :math:`-\operatorname{sg}(\min(\rho,
    \epsilon_\text{high}))\, A \log\pi_{i,t}` (the ratio capped from above
    only, at :math:`\epsilon_\text{high}` itself, not :math:`1 +
    \epsilon_\text{high}`);
  * ``"sapo"``: :math:`-\sigma(\tau(\rho - 1))\,\tfrac{4}{\tau}\, A`, with
    :math:`\tau` = ``sapo_temperature_pos`` where :math:`A > 0`, else
    ``sapo_temperature_neg``;
  * ``"vespo"``: :math:`-\operatorname{sg}(\phi(w_i))\, A \log\pi_{i,t}`,
    :math:`\phi(w) = e^{\lambda + k \log w - \lambda w}`, :math:`w_i =
    \exp \sum_t \operatorname{clip}(\log\rho_{i,t}, \pm 20)` (:math:`\log w`
    clipped to :math:`[\log 10^{-8}, 20]`), :math:`(k, \lambda)` =
    ``(vespo_k_pos, vespo_lambda_pos)`` where :math:`A \ge 0`, else the
    ``_neg`` pair; a non-finite :math:`\phi` is 0 (trl's
    ``get_gamma_weights``; token-level ratios only);

  plus, with ``ref_log_probs``, :math:`\beta\, k_3` (:func:`kl_estimate`:
  :math:`e^{r} - r - 1`, :math:`r = \log\pi^\text{ref} - \log\pi`), times
  :math:`\rho_{i,t}` with ``use_bias_correction_kl`` (DeepSeek-V3.2; the
  ratio before the ``delta`` cap, differentiated).

  With :math:`n_i` the active tokens of completion :math:`i` (its
  ``completion_mask`` and a token-shaped ``where``) and :math:`S_i =
  \sum_t \ell_{i,t}` over them, the per-completion values (``"none"``) and
  ``"mean"`` are:

  * ``None`` (the default, ``token_averaging="sequence"``): the token mean
    :math:`S_i / n_i`; ``"mean"`` averages the completions that have tokens
    (one without is 0 and left out).
  * ``"grpo"``, ``"sapo"``: :math:`S_i / n_i` (0 without tokens);
    ``"mean"`` averages every completion (one without tokens counts as 0, as
    in trl).
  * ``"bnpo"``, ``"dapo"``, ``"cispo"``, ``"vespo"``: the token sum
    :math:`S_i` (values are token means weighted by :math:`n_i`), and
    ``"mean"`` is :math:`\sum_i S_i / \sum_i n_i`, the mean over all active
    tokens (``weights`` :math:`w_i`: :math:`\sum_i w_i S_i / \sum_i w_i
    n_i`). ``token_averaging="token"`` is ``"dapo"``.
  * ``"dr_grpo"``: :math:`S_i / L`, ``L = max_completion_length``;
    ``"mean"``: :math:`\sum_i S_i / (B L)`.
  * ``"luspo"``: :math:`S_i` (each completion weighted by its length);
    ``"mean"``: :math:`\sum_i S_i / B`.

  A completion-shaped ``where`` drops completions from every ``"mean"``;
  all-masked completions give 0 (value and gradient), never NaN.

  Args:
    log_probs: ``[..., time]`` floating per-token log-probabilities of the
      sampled completions under the policy being optimised.
    old_log_probs: ``[..., time]`` the same under the sampling policy (data:
      gradient stopped), or ``None`` for ``log_probs`` itself (one update per
      generation: ratio 1, trl's ``per_token_logps.detach()``).
    advantages: ``[...]`` one advantage per completion, e.g. from
      :func:`group_normalized_advantages` (data: gradient stopped).
    completion_mask: ``[..., time]`` boolean (or 0/1 integer) mask of the
      completion tokens; ``None`` for all.
    ref_log_probs: optional ``[..., time]`` per-token log-probabilities under
      the reference policy, for the k3 KL penalty.
    loss_type: ``None`` or one of ``"grpo"``, ``"bnpo"``, ``"dr_grpo"``,
      ``"dapo"``, ``"cispo"``, ``"sapo"``, ``"luspo"``, ``"vespo"``
      (static), see above. ``None`` keeps the behaviour of
      ``token_averaging`` (before loss types existed).
    importance_sampling_level: ``"token"`` or ``"sequence"`` (GSPO; static).
      ``"vespo"`` needs ``"token"``; trl warns (but computes) for
      ``"sequence"`` with ``"bnpo"``, ``"dr_grpo"``, ``"dapo"``, ``"cispo"``
      and for ``"luspo"`` with ``"token"``: so does this function, silently.
    epsilon: lower clip range :math:`\epsilon \ge 0` of the clipped types
      (``None``: 0.2; may be traced).
    epsilon_high: upper clip range :math:`\epsilon_\text{high}` (``None``:
      ``epsilon``; DAPO's clip-higher 0.28); for ``"cispo"`` the ratio cap
      itself, required (ScaleRL: 5.0).
    delta: optional cap :math:`\delta > 0` of the unclipped ratio (clipped
      types; INTELLECT-2 recommends :math:`> 1 + \epsilon`).
    beta: KL coefficient :math:`\beta` (DeepSeekMath: 0.04), used only with
      ``ref_log_probs``.
    use_bias_correction_kl: multiply the KL term by the ratio (static;
      trl 1.16's default is ``True``, here ``False``: give it).
    max_completion_length: ``"dr_grpo"``'s constant :math:`L > 0`
      (required there).
    sapo_temperature_pos, sapo_temperature_neg: ``"sapo"``'s
      :math:`\tau > 0` (``None``: trl's 1.0 and 1.05).
    vespo_k_pos, vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg:
      ``"vespo"``'s :math:`k, \lambda \ge 0` (``None``: trl's 2, 3, 3, 2).
    token_averaging: the older spelling: ``"sequence"`` (the default
      behaviour) or ``"token"`` (``loss_type="dapo"``); with a
      ``loss_type`` only as ``("dapo", "token")``.
    where: boolean mask of the per-completion shape ``[...]`` (drops
      completions) or of ``log_probs``' shape (drops tokens, like
      ``completion_mask``).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-completion values (see above), or a scalar for
    ``"sum"``/``"mean"``.

  Options a loss type does not use (``epsilon`` and ``delta`` for
  ``"cispo"``/``"sapo"``/``"vespo"``, ``epsilon_high`` for ``"sapo"``/
  ``"vespo"``, the ``sapo_*``, ``vespo_*`` and ``max_completion_length``
  elsewhere, ``use_bias_correction_kl`` without ``ref_log_probs``) are an
  error unless ``None``/``False``.

  Matches trl 1.16's ``GRPOTrainer._compute_loss``: ``reduction="mean"``
  equals its ``loss`` for each ``loss_type`` on one process (evaluation mode,
  or before its gradient-accumulation normaliser: trl divides ``"grpo"``,
  ``"bnpo"``, ``"dr_grpo"``, ``"sapo"``, ``"luspo"`` by the accumulation
  steps and ``"dapo"``/``"cispo"``/``"vespo"`` by the tokens of the whole
  accumulated generation batch), without vLLM's importance-sampling
  correction, the off-policy mask, the entropy mask and bonus. Differences:
  trl's default ``loss_type`` is ``"dapo"``, ``beta`` 0 and
  ``use_bias_correction_kl`` true; ``"cispo"`` without ``epsilon_high`` is
  an error (trl caps at ``epsilon``). ``"bnpo"`` and ``"dapo"`` are the
  same on one program; across processes trl's ``"bnpo"`` divides by each
  process's tokens (see :func:`jaxloss.distributed.grpo_loss`).

  >>> import jax.numpy as jnp, numpy as np, jaxloss
  >>> logp = jnp.log(jnp.array([[0.5, 0.5, 1.0], [0.4, 1.0, 1.0]]))
  >>> mask = jnp.array([[1, 1, 0], [1, 1, 1]])
  >>> adv = jaxloss.group_normalized_advantages(jnp.array([1.0, 0.0]), 2)
  >>> loss = jaxloss.grpo_loss(logp, None, adv, mask)  # ratio 1: -A
  >>> print(np.round(np.asarray(loss), 4))
  [-0.707  0.707]
  >>> print(np.round(np.asarray(jaxloss.grpo_loss(
  ...     logp, None, adv, mask, loss_type="dapo")), 4))  # token sums
  [-1.414  2.121]

  References:
    Shao et al., `DeepSeekMath: Pushing the Limits of Mathematical Reasoning
    in Open Language Models <https://arxiv.org/abs/2402.03300>`_, 2024
    (GRPO); Yu et al., `DAPO: An Open-Source LLM Reinforcement Learning
    System at Scale <https://arxiv.org/abs/2503.14476>`_, 2025; Liu et al.,
    `Understanding R1-Zero-Like Training: A Critical Perspective
    <https://arxiv.org/abs/2503.20783>`_, 2025 (Dr. GRPO); Zheng et al.,
    `Group Sequence Policy Optimization
    <https://arxiv.org/abs/2507.18071>`_, 2025 (GSPO); MiniMax,
    `MiniMax-M1 <https://arxiv.org/abs/2506.13585>`_, 2025 (CISPO); Gao et
    al., `Soft Adaptive Policy Optimization
    <https://arxiv.org/abs/2511.20347>`_, 2025 (SAPO); `Length-Unbiased
    Sequence Policy Optimization <https://arxiv.org/abs/2602.05261>`_, 2026
    (LUSPO); `Variational Sequence-Level Soft Policy Optimization
    <https://arxiv.org/abs/2602.10693>`_, 2026 (VESPO; the titles as trl's
    GRPOConfig cites them); Prime Intellect,
    `INTELLECT-2 <https://arxiv.org/abs/2505.07291>`_, 2025 (``delta``);
    DeepSeek-AI, `DeepSeek-V3.2 <https://arxiv.org/abs/2512.02556>`_, 2025
    (bias-corrected KL); Schulman, `Approximating KL Divergence
    <http://joschu.net/blog/kl-approx.html>`_, 2020 (k3).
  """
  values, weights, where = grpo_terms(
    log_probs,
    old_log_probs,
    advantages,
    completion_mask,
    ref_log_probs,
    loss_type=loss_type,
    importance_sampling_level=importance_sampling_level,
    epsilon=epsilon,
    epsilon_high=epsilon_high,
    delta=delta,
    beta=beta,
    use_bias_correction_kl=use_bias_correction_kl,
    max_completion_length=max_completion_length,
    sapo_temperature_pos=sapo_temperature_pos,
    sapo_temperature_neg=sapo_temperature_neg,
    vespo_k_pos=vespo_k_pos,
    vespo_lambda_pos=vespo_lambda_pos,
    vespo_k_neg=vespo_k_neg,
    vespo_lambda_neg=vespo_lambda_neg,
    token_averaging=token_averaging,
    where=where,
    weights=weights,
  )
  return reduce(values, reduction, weights=weights, where=where)
