"""Per-token log-probabilities (and entropy) of a linear layer's softmax.

:func:`linear_log_probs` computes ``log p(label)`` of the tokens' logits
``soft_cap(hidden @ weight + bias) / temperature`` a chunk of tokens at a
time with :mod:`jaxloss._core.linear_softmax`, never the ``tokens × vocab``
logits: what policy-gradient fine-tuning of a language model (GRPO, PPO)
feeds its loss.
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxloss._core import linear_losses, value_checks
from jaxloss._core.chunking import ChunkSize
from jaxloss._core.loss import loss

__all__ = ["linear_log_probs"]


@loss(labels=value_checks.class_index("weight", axis_arg=None))
def linear_log_probs(
  hidden: ArrayLike,
  weight: ArrayLike,
  labels: ArrayLike,
  *,
  bias: ArrayLike | None = None,
  temperature: ArrayLike = 1.0,
  logit_soft_cap: ArrayLike | None = None,
  return_entropy: bool = False,
  chunk_size: ChunkSize = "auto",
) -> jax.Array | tuple[jax.Array, jax.Array]:
  r"""Per-token ``log p(label)`` (and the softmax entropy) of ``hidden @
  weight + bias``, never materialising the logits.

  .. math::
    z = \frac{c \tanh\big((h W + b) / c\big)}{T}, \qquad
    \log p_y = z_y - \operatorname{lse}(z), \qquad
    H = \operatorname{lse}(z) - \sum_v p_v z_v

  (the soft cap ``c`` only with ``logit_soft_cap``): the soft cap first,
  then the temperature ``T``, the order in which samplers apply them (vLLM,
  Hugging Face's generation), so that these are the log-probabilities of
  the tokens the sampler drew at temperature ``T``.

  Policy-gradient fine-tuning of language models (GRPO, PPO and
  :func:`jaxloss.grpo_loss`) needs exactly these per-token log-probabilities
  of the sampled tokens under the policy, and the entropy bonus; verl and
  tunix compute them from the full ``[tokens, vocab]`` logits. Here the
  tokens are processed ``chunk_size`` at a time
  (:mod:`jaxloss._core.linear_softmax`): each chunk holds one ``[chunk,
  vocab]`` block of logits, and a custom VJP recomputes each chunk in the
  backward pass, differentiable with respect to ``hidden``, ``weight``,
  ``bias``, a traced ``temperature`` and a traced soft cap. A ``bfloat16``
  weight is upcast one ``[dim, slice]`` slice at a time.

  Args:
    hidden: ``[..., dim]`` floating hidden states (e.g. ``[batch, time,
      dim]``).
    weight: ``[dim, vocab]`` output projection (a Flax ``Dense`` kernel, or
      the transposed embedding table of a tied model).
    labels: ``[...]`` integer token labels (``hidden``'s shape without
      ``dim``) in ``[0, vocab)``, e.g. the sampled completion tokens. Any
      other label gives a NaN log-probability for its token (the library's
      label rule; :func:`jaxloss.checked` reports it; the entropy, which
      does not read the label, stays finite): set padding positions to a
      valid label (e.g. 0) and mask them in the loss that consumes the
      values.
    bias: optional ``[vocab]`` bias (``-inf`` entries mask those classes out).
    temperature: ``T > 0`` (may be traced; it is differentiated).
    logit_soft_cap: optional ``c > 0``: logits become ``c·tanh(z/c)`` (Gemma
      2) before the temperature (may be traced; it is differentiated).
    return_entropy: a Python bool; ``True`` also returns the per-token
      entropy of the softmax.
    chunk_size: tokens per chunk. ``"auto"`` (the default, as for every
      chunked loss of the library) computes the logits in one block, with
      plain autodiff, while ``tokens × vocab`` logits fit the library's 16
      MiB budget, and otherwise takes the largest power of two of tokens
      whose ``[chunk, vocab]`` blocks do, at least 128 tokens; ``None`` is
      one dense block (the materialised logits); an int is that many tokens
      (then only reverse-mode differentiation is supported).

  Returns:
    ``log_probs`` of ``labels``' shape, or with ``return_entropy=True`` the
    tuple ``(log_probs, entropy)``, both of ``labels``' shape, in the
    compute dtype (float32 at least).

  Equals ``jnp.take_along_axis(jax.nn.log_softmax(z), labels[..., None],
  -1)[..., 0]`` and ``-jnp.sum(jax.nn.softmax(z) * jax.nn.log_softmax(z),
  -1)`` on the materialised ``z`` above. The vocabulary-parallel version is
  :func:`jaxloss.distributed.linear_log_probs`.

  >>> import jax, jax.numpy as jnp, jaxloss
  >>> hidden = jnp.sin(jnp.arange(48.0)).reshape(2, 3, 8)
  >>> weight = jnp.cos(jnp.arange(80.0)).reshape(8, 10)
  >>> labels = jnp.array([[1, 2, 3], [4, 5, 0]])
  >>> log_p, entropy = jaxloss.linear_log_probs(
  ...     hidden, weight, labels, temperature=0.7, return_entropy=True,
  ...     chunk_size=4)
  >>> dense = jax.nn.log_softmax(hidden @ weight / 0.7)
  >>> want = jnp.take_along_axis(dense, labels[..., None], -1)[..., 0]
  >>> print(log_p.shape, bool(jnp.allclose(log_p, want, atol=1e-5)))
  (2, 3) True
  >>> print(f"{float(log_p[0, 0]):.4f}, entropy {float(entropy[0, 0]):.4f}")
  -2.9365, entropy 2.1774

  References:
    Shao et al., `DeepSeekMath <https://arxiv.org/abs/2402.03300>`_, 2024
    (GRPO); Schulman et al., `Proximal Policy Optimization
    <https://arxiv.org/abs/1707.06347>`_, 2017; Wijmans et al., `Cut Your
    Losses in Large-Vocabulary Language Models
    <https://arxiv.org/abs/2411.09009>`_, 2024 (the chunked softmax over a
    linear layer); Gemma Team, `Gemma 2 <https://arxiv.org/abs/2408.00118>`_,
    2024 (logit soft-capping).
  """
  return linear_losses.log_probs(
    hidden,
    weight,
    labels,
    bias=bias,
    temperature=temperature,
    logit_soft_cap=logit_soft_cap,
    return_entropy=return_entropy,
    chunk_size=chunk_size,
    mesh=linear_losses.Mesh(None, None),
  )
