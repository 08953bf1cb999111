"""Preference-optimisation losses for language models: DPO and its variants,
SimPO, ORPO, and GRPO.

Every loss returns one value per preference pair (or, for GRPO, per
completion) and reduces through :func:`jaxloss.reduce`. Inputs are
log-probabilities computed by the caller from a model's logits:

* :func:`dpo_loss` takes one summed log-probability per completion (trl's
  ``*_logps``), ``[batch]``.
* :func:`simpo_loss`, :func:`orpo_loss` and :func:`grpo_loss` take
  per-token log-probabilities ``[batch, time]`` with boolean (or 0/1
  integer) token masks, and average over the masked tokens themselves, so a
  padded token never reaches the result.
"""

from jaxloss.preference.pairwise import (
  dpo_implicit_rewards,
  dpo_loss,
  orpo_loss,
  simpo_loss,
)
from jaxloss.preference.policy import (
  group_normalized_advantages,
  grpo_loss,
  kl_estimate,
)

__all__ = [
  "dpo_implicit_rewards",
  "dpo_loss",
  "group_normalized_advantages",
  "grpo_loss",
  "kl_estimate",
  "orpo_loss",
  "simpo_loss",
]
