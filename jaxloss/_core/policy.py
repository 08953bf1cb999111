"""What the policy losses of :mod:`jaxloss.rl` and :mod:`jaxloss.preference`
share: bounded probability ratios, PPO's clipped surrogate, and the reading of
inputs that are data (rewards, advantages, old log-probabilities); Schulman's
KL estimators and GRPO's per-completion terms (shared by
:func:`jaxloss.grpo_loss` and :func:`jaxloss.distributed.grpo_loss`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.reduction import split_where


def bounded_exp(x: jax.Array) -> jax.Array:
  """``exp(min(x, log(max) / 2))``: equal to ``exp(x)`` up to about 1.8e19 in
  float32 (1e154 in float64), and finite (gradient 0) beyond, so that a ratio
  times an advantage never overflows to ``inf`` (and ``0 * inf`` never gives a
  NaN gradient)."""
  bound = 0.5 * float(np.log(jnp.finfo(x.dtype).max))
  return jnp.exp(jnp.minimum(x, bound))


def clipped_surrogate(
  log_ratio: jax.Array,
  advantages: jax.Array,
  eps_low: ArrayLike,
  eps_high: ArrayLike,
  delta: ArrayLike | None = None,
) -> jax.Array:
  """``-min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)``, ``r = exp(log_ratio)``
  (bounded by :func:`bounded_exp`); with ``delta`` the unclipped ``r`` is
  first capped at ``delta`` (INTELLECT-2's two-sided clipping, trl's
  ``delta``)."""
  ratio = bounded_exp(log_ratio)
  clipped = jnp.clip(ratio, 1 - eps_low, 1 + eps_high)
  if delta is not None:
    ratio = jnp.minimum(ratio, delta)
  return -jnp.minimum(ratio * advantages, clipped * advantages)


def data(
  arg: str, x: ArrayLike, like: jax.Array, shape: Sequence[int]
) -> jax.Array:
  """A numeric input that is data, not differentiated by the loss (rewards,
  discounts, advantages, returns): cast to ``like``'s dtype, shape checked."""
  x = checks.as_targets(arg, x, like)
  checks.shape(arg, x, tuple(shape))
  return x


# --------------------------------------------------------------------------- #
# KL estimators (Schulman 2020)

KLEstimator = Literal["k1", "k2", "k3"]
KL_ESTIMATORS: tuple[KLEstimator, ...] = ("k1", "k2", "k3")


def kl_estimates(
  log_probs: jax.Array, ref_log_probs: jax.Array, estimator: str
) -> jax.Array:
  """Schulman's estimators of KL(π‖π_ref), elementwise, from samples of π:
  with ``r = ref_log_probs - log_probs``, k1 ``-r``, k2 ``r² / 2``, k3
  ``exp(r) - r - 1`` (``exp`` bounded by :func:`bounded_exp`)."""
  if estimator == "k1":
    return log_probs - ref_log_probs
  r = ref_log_probs - log_probs
  if estimator == "k2":
    return 0.5 * jnp.square(r)
  return bounded_exp(r) - r - 1


# --------------------------------------------------------------------------- #
# GRPO's per-completion terms

GRPOLossType = Literal[
  "grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"
]
GRPO_LOSS_TYPES: tuple[GRPOLossType, ...] = (
  "grpo",
  "bnpo",
  "dr_grpo",
  "dapo",
  "cispo",
  "sapo",
  "luspo",
  "vespo",
)
TokenAveraging = Literal["sequence", "token"]
TOKEN_AVERAGING: tuple[TokenAveraging, ...] = ("sequence", "token")
ImportanceSamplingLevel = Literal["token", "sequence"]
IMPORTANCE_SAMPLING_LEVELS: tuple[ImportanceSamplingLevel, ...] = (
  "token",
  "sequence",
)
# The loss types of PPO's clipped surrogate ("sequence": the reduction of
# `token_averaging="sequence"`, before loss types).
_CLIPPED = ("sequence", "grpo", "bnpo", "dr_grpo", "dapo", "luspo")


def completion_tokens(
  arg: str, mask: ArrayLike | None, shape: Sequence[int]
) -> jax.Array:
  """A token mask of ``shape``: boolean, or integer 0/1 (Hugging Face's
  attention-mask convention); ``None`` means every token."""
  if mask is None:
    return jnp.ones(tuple(shape), bool)
  mask = jnp.asarray(mask)
  if jnp.issubdtype(mask.dtype, jnp.integer):
    mask = mask != 0
  elif mask.dtype != jnp.bool_:
    raise checks.fail(
      f"argument `{arg}` must be a boolean or integer mask, got dtype "
      f"{mask.dtype} with shape {mask.shape}.",
      TypeError,
    )
  checks.shape(arg, mask, tuple(shape))
  return mask


def gamma_weights(
  advantages: jax.Array,
  log_ratio: jax.Array,
  tokens: jax.Array,
  k_pos: ArrayLike,
  lambda_pos: ArrayLike,
  k_neg: ArrayLike,
  lambda_neg: ArrayLike,
) -> jax.Array:
  """VESPO's sequence weight ``φ(w) = exp(λ + k log w − λ w)`` of the
  sequence ratio ``w = exp(Σ_t clip(log_ratio, ±20))`` (``log w`` clipped to
  ``[log 1e-8, 20]``; ``k``, ``λ`` chosen by the sign of the advantage,
  ``λ ≥ 1e-4``; a non-finite ``φ`` is 0): trl 1.16's
  ``GRPOTrainer.get_gamma_weights`` without vLLM's importance ratio.
  ``advantages`` ``[..., 1]``; returns ``[..., 1]`` (no gradient taken here:
  the caller stops it)."""
  clamped = jnp.clip(log_ratio, -20.0, 20.0)
  log_w = jnp.sum(jnp.where(tokens, clamped, 0), axis=-1, keepdims=True)
  log_w = jnp.clip(log_w, math.log(1e-8), 20.0)
  nonneg = advantages >= 0
  k = jnp.where(nonneg, k_pos, k_neg)
  lam = jnp.maximum(jnp.where(nonneg, lambda_pos, lambda_neg), 1e-4)
  phi = jnp.exp(lam + k * log_w - lam * jnp.exp(log_w))
  return jnp.where(jnp.isfinite(phi), phi, jnp.zeros((), phi.dtype))


def _reject(loss_type: str | None, why: str, **options: object) -> None:
  """Options a loss type does not use must be left at ``None``."""
  for name, value in options.items():
    if value is not None:
      raise checks.fail(
        f"`{name}` is not used by loss_type={loss_type!r} ({why}); leave it "
        "None."
      )


def grpo_terms(
  log_probs: ArrayLike,
  old_log_probs: ArrayLike | None,
  advantages: ArrayLike,
  completion_mask: ArrayLike | None,
  ref_log_probs: ArrayLike | None,
  *,
  loss_type: str | None,
  importance_sampling_level: str,
  epsilon: ArrayLike | None,
  epsilon_high: ArrayLike | None,
  delta: ArrayLike | None,
  beta: ArrayLike,
  use_bias_correction_kl: bool,
  max_completion_length: ArrayLike | None,
  sapo_temperature_pos: ArrayLike | None,
  sapo_temperature_neg: ArrayLike | None,
  vespo_k_pos: ArrayLike | None,
  vespo_lambda_pos: ArrayLike | None,
  vespo_k_neg: ArrayLike | None,
  vespo_lambda_neg: ArrayLike | None,
  token_averaging: str | None,
  where: ArrayLike | None,
  weights: ArrayLike | None,
) -> tuple[jax.Array, ArrayLike | None, jax.Array | None]:
  """GRPO's checks and maths up to the reduction (see
  :func:`jaxloss.grpo_loss`): ``(values, weights, where)`` for
  :func:`jaxloss.reduce` (or the global reduction of
  :mod:`jaxloss.distributed`), per completion."""
  checks.option("loss_type", loss_type, (None, *GRPO_LOSS_TYPES))
  checks.option(
    "importance_sampling_level",
    importance_sampling_level,
    IMPORTANCE_SAMPLING_LEVELS,
  )
  if token_averaging is not None:
    checks.option("token_averaging", token_averaging, TOKEN_AVERAGING)
    if loss_type is not None and (loss_type, token_averaging) != (
      "dapo",
      "token",
    ):
      raise checks.fail(
        f"token_averaging={token_averaging!r} conflicts with "
        f"loss_type={loss_type!r}: token_averaging is the older spelling "
        '(token_averaging="token" is loss_type="dapo"); give one of them.'
      )
  kind = loss_type or ("dapo" if token_averaging == "token" else "sequence")
  if kind not in _CLIPPED:
    _reject(loss_type, "no clipped surrogate", epsilon=epsilon, delta=delta)
  if kind in ("sapo", "vespo"):
    _reject(loss_type, "no clipping", epsilon_high=epsilon_high)
  if kind != "sapo":
    _reject(
      loss_type,
      "sapo's gate",
      sapo_temperature_pos=sapo_temperature_pos,
      sapo_temperature_neg=sapo_temperature_neg,
    )
  if kind != "vespo":
    _reject(
      loss_type,
      "vespo's weights",
      vespo_k_pos=vespo_k_pos,
      vespo_lambda_pos=vespo_lambda_pos,
      vespo_k_neg=vespo_k_neg,
      vespo_lambda_neg=vespo_lambda_neg,
    )
  if kind != "dr_grpo":
    _reject(
      loss_type,
      "dr_grpo's constant",
      max_completion_length=max_completion_length,
    )
  elif max_completion_length is None:
    raise checks.fail(
      'loss_type="dr_grpo" needs `max_completion_length` (trl: the '
      "config's max_completion_length, the constant it divides by)."
    )
  if kind == "cispo" and epsilon_high is None:
    raise checks.fail(
      'loss_type="cispo" needs `epsilon_high`, the cap on the ratio itself '
      "(ScaleRL: 5.0; trl would cap at `epsilon`, 0.2)."
    )
  if kind == "vespo" and importance_sampling_level != "token":
    raise checks.fail(
      'loss_type="vespo" weighs whole sequences itself: '
      f"importance_sampling_level={importance_sampling_level!r} must be "
      '"token" (trl warns).'
    )
  if ref_log_probs is None and use_bias_correction_kl:
    raise checks.fail(
      "`use_bias_correction_kl` multiplies the KL penalty by the ratio: it "
      "needs `ref_log_probs`."
    )
  epsilon = 0.2 if epsilon is None else epsilon
  for arg, value in (
    ("epsilon", epsilon),
    ("epsilon_high", epsilon_high),
    ("beta", beta),
    ("vespo_k_pos", vespo_k_pos),
    ("vespo_lambda_pos", vespo_lambda_pos),
    ("vespo_k_neg", vespo_k_neg),
    ("vespo_lambda_neg", vespo_lambda_neg),
  ):
    if value is not None:
      checks.nonnegative(arg, value)
  for arg, value in (
    ("delta", delta),
    ("max_completion_length", max_completion_length),
    ("sapo_temperature_pos", sapo_temperature_pos),
    ("sapo_temperature_neg", sapo_temperature_neg),
  ):
    if value is not None:
      checks.positive(arg, value)

  log_probs = checks.as_float("log_probs", log_probs)
  checks.min_rank("log_probs", log_probs, 1, "[..., time]")
  shape = log_probs.shape
  if old_log_probs is None:
    old_log_probs = log_probs
  else:
    old_log_probs = data("old_log_probs", old_log_probs, log_probs, shape)
  advantages = data("advantages", advantages, log_probs, shape[:-1])
  tokens = completion_tokens("completion_mask", completion_mask, shape)
  elements, examples = split_where(where, shape, -1)
  if elements is not None:
    tokens = tokens & elements
  if where is not None and jnp.ndim(where) == len(shape):
    examples = None  # a token mask, like completion_mask
  dtype = log_probs.dtype
  like = lambda value: numerics.like(value, log_probs)

  log_ratio = log_probs - jax.lax.stop_gradient(old_log_probs)
  if importance_sampling_level == "sequence":  # GSPO
    n = jnp.sum(tokens, axis=-1, keepdims=True, dtype=dtype)
    total = jnp.sum(jnp.where(tokens, log_ratio, 0), axis=-1, keepdims=True)
    log_weight = jnp.broadcast_to(total / jnp.maximum(n, 1), shape)
  else:
    log_weight = log_ratio
  adv = jax.lax.stop_gradient(advantages)[..., None]
  if kind in _CLIPPED:
    per_token = clipped_surrogate(
      log_weight,
      adv,
      like(epsilon),
      like(epsilon if epsilon_high is None else epsilon_high),
      None if delta is None else like(delta),
    )
  elif kind == "cispo":
    capped = jnp.minimum(bounded_exp(log_weight), like(epsilon_high))
    per_token = -jax.lax.stop_gradient(capped) * adv * log_probs
  elif kind == "sapo":
    tau = jnp.where(
      adv > 0,
      like(1.0 if sapo_temperature_pos is None else sapo_temperature_pos),
      like(1.05 if sapo_temperature_neg is None else sapo_temperature_neg),
    )
    gate = jax.nn.sigmoid(tau * (bounded_exp(log_weight) - 1)) * 4 / tau
    per_token = -gate * adv
  else:  # vespo
    phi = gamma_weights(
      adv,
      log_ratio,
      tokens,
      like(2.0 if vespo_k_pos is None else vespo_k_pos),
      like(3.0 if vespo_lambda_pos is None else vespo_lambda_pos),
      like(3.0 if vespo_k_neg is None else vespo_k_neg),
      like(2.0 if vespo_lambda_neg is None else vespo_lambda_neg),
    )
    per_token = -jax.lax.stop_gradient(phi) * adv * log_probs
  if ref_log_probs is not None:
    ref = checks.as_float("ref_log_probs", ref_log_probs)
    checks.shape("ref_log_probs", ref, shape)
    kl = kl_estimates(log_probs, ref.astype(dtype), "k3")
    if use_bias_correction_kl:
      kl = kl * bounded_exp(log_weight)
    per_token = per_token + like(beta) * kl

  count = jnp.sum(tokens, axis=-1, dtype=dtype)
  total = jnp.sum(jnp.where(tokens, per_token, 0), axis=-1)
  mean = numerics.masked_mean(per_token, tokens)
  if kind == "sequence":
    return mean, weights, count > 0
  if kind in ("grpo", "sapo"):
    return mean, weights, examples
  if kind == "dr_grpo":
    return total / like(max_completion_length), weights, examples
  if kind == "luspo":
    return total, weights, examples
  token_weights = (
    count
    if weights is None
    else count
    * checks.broadcast_weights("weights", weights, count, same_rank=True)
  )
  return mean, token_weights, examples
