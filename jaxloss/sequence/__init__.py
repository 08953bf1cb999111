"""Sequence losses: CTC and the chunked softmax of a linear output layer.

:func:`ctc_loss` and :func:`ctc_loss_with_forward_probs` keep optax's
signatures and call optax's forward algorithm; they add the jaxloss
``where``/``weights``/``reduction`` contract per sequence.
:func:`linear_cross_entropy` computes a language model's token cross-entropy
from the last hidden states and the output projection without building the
``tokens × vocab`` logits, and :func:`linear_log_probs` the per-token
log-probabilities (and entropy) that policy-gradient fine-tuning needs.

Per-token losses on materialised logits (``[batch, time, vocab]`` with a
padding mask) are the classification family's
:func:`jaxloss.softmax_cross_entropy_with_integer_labels` and
:func:`jaxloss.perplexity`.
"""

from jaxloss.sequence.ctc import ctc_loss, ctc_loss_with_forward_probs
from jaxloss.sequence.linear_cross_entropy import linear_cross_entropy
from jaxloss.sequence.log_probs import linear_log_probs

__all__ = [
  "ctc_loss",
  "ctc_loss_with_forward_probs",
  "linear_cross_entropy",
  "linear_log_probs",
]
