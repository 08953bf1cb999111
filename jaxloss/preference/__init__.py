"""Preference-optimisation losses for language models: DPO and its variants,
KTO, CPO, SimPO, ORPO, and GRPO.

Every loss returns one value per preference pair (or, for KTO and GRPO, per
completion) and reduces through :func:`jaxloss.reduce`. Inputs are
log-probabilities computed by the caller from a model's logits:

* :func:`dpo_loss`, :func:`kto_loss` and :func:`cpo_loss` take one
  log-probability per completion (trl's ``*_logps``: summed over its tokens,
  or averaged where the loss type says so), ``[batch]``.
* :func:`simpo_loss`, :func:`orpo_loss` and :func:`grpo_loss` take
  per-token log-probabilities ``[batch, time]`` with boolean (or 0/1
  integer) token masks, and average over the masked tokens themselves, so a
  padded token never reaches the result.
"""

from jaxloss.preference.cpo import cpo_loss
from jaxloss.preference.dpo import dpo_implicit_rewards, dpo_loss
from jaxloss.preference.kto import kto_loss
from jaxloss.preference.pairwise import orpo_loss, simpo_loss
from jaxloss.preference.policy import (
  group_normalized_advantages,
  grpo_loss,
  kl_estimate,
)

__all__ = [
  "cpo_loss",
  "dpo_implicit_rewards",
  "dpo_loss",
  "group_normalized_advantages",
  "grpo_loss",
  "kl_estimate",
  "kto_loss",
  "orpo_loss",
  "simpo_loss",
]
