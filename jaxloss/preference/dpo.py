"""Direct Preference Optimization: :func:`dpo_loss` with every loss type of
trl 1.16's ``DPOTrainer``, and :func:`dpo_implicit_rewards`.

Both take one summed log-probability per completion (trl's ``*_logps``),
``[...]``, under the policy and under the reference model.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

__all__ = ["dpo_implicit_rewards", "dpo_loss"]

DpoLossType = Literal[
  "sigmoid",
  "hinge",
  "ipo",
  "robust",
  "exo_pair",
  "nca_pair",
  "bco_pair",
  "sppo_hard",
  "aot",
  "aot_unpaired",
  "apo_zero",
  "apo_down",
  "discopop",
  "sigmoid_norm",
]
DPO_LOSS_TYPES: tuple[DpoLossType, ...] = get_args(DpoLossType)
# The types that read `label_smoothing`, and those that sort over the batch.
_SMOOTHED = ("sigmoid", "robust", "exo_pair", "aot", "aot_unpaired")
_SORTED = ("aot", "aot_unpaired")
DISCOPOP_TAU = 0.05  # trl 1.16 DPOConfig.discopop_tau (the paper's value)


def _check_dpo_options(
  loss_type: str,
  beta: Any,
  label_smoothing: Any,
  discopop_tau: Any,
  lengths: tuple[Any, Any],
  weights: Any,
) -> None:
  """Each option is valid for ``loss_type``; one it ignores is an error."""
  checks.option("loss_type", loss_type, DPO_LOSS_TYPES)
  checks.positive("beta", beta)
  static = checks.is_static_number(label_smoothing)
  if loss_type not in _SMOOTHED:
    if not (static and label_smoothing == 0):
      raise checks.fail(
        f"`label_smoothing` applies to loss_type {', '.join(_SMOOTHED)} "
        f"only, got {label_smoothing} with loss_type={loss_type!r}."
      )
  elif loss_type == "robust":
    if static and not 0 <= label_smoothing < 0.5:
      raise checks.fail(
        f"`label_smoothing` must lie in [0, 0.5) for loss_type='robust', "
        f"got {label_smoothing}."
      )
  elif loss_type == "exo_pair":
    if static and not 0 < label_smoothing < 1:
      raise checks.fail(
        "`label_smoothing` must lie in (0, 1) for loss_type='exo_pair' (EXO's "
        f"ε; the paper suggests 1e-3), got {label_smoothing}."
      )
  else:
    checks.in_unit_interval("label_smoothing", label_smoothing)
  if loss_type == "discopop":
    checks.positive("discopop_tau", discopop_tau)
  elif discopop_tau is not None:
    raise checks.fail(
      f"`discopop_tau` applies to loss_type 'discopop' only, got "
      f"{discopop_tau} with loss_type={loss_type!r}."
    )
  given = [length is not None for length in lengths]
  if loss_type == "sigmoid_norm" and not all(given):
    raise checks.fail(
      "`chosen_lengths` and `rejected_lengths` are required for "
      "loss_type='sigmoid_norm' (each completion's token count)."
    )
  if loss_type == "ipo" and any(given) and not all(given):
    raise checks.fail(
      "`chosen_lengths` and `rejected_lengths` go together for loss_type='ipo'."
    )
  if loss_type not in ("ipo", "sigmoid_norm") and any(given):
    raise checks.fail(
      "`chosen_lengths`/`rejected_lengths` apply to loss_type 'ipo' and "
      f"'sigmoid_norm' only, got them with loss_type={loss_type!r}."
    )
  if loss_type in _SORTED and weights is not None:
    raise checks.fail(
      f"`weights` are not supported by loss_type={loss_type!r}: it sorts "
      "the batch, so a value no longer belongs to one pair (trl 1.16 refuses "
      "WPO weighting for it too); drop pairs with `where`."
    )


def _dpo_inputs(
  policy_chosen_logps: ArrayLike,
  policy_rejected_logps: ArrayLike,
  reference_chosen_logps: ArrayLike,
  reference_rejected_logps: ArrayLike,
) -> tuple[jax.Array, ...]:
  return checks.same_shape_floats(
    policy_chosen_logps=policy_chosen_logps,
    policy_rejected_logps=policy_rejected_logps,
    reference_chosen_logps=reference_chosen_logps,
    reference_rejected_logps=reference_rejected_logps,
  )


def _lengths(arg: str, lengths: ArrayLike, like: jax.Array) -> jax.Array:
  """Token counts (integer or float; a scalar or of ``like``'s rank),
  clamped at 1 like trl's ``completion_mask.sum(1).clamp(min=1)``."""
  lengths = jnp.asarray(lengths)
  if not jnp.issubdtype(lengths.dtype, jnp.number):
    raise checks.fail(
      f"argument `{arg}` must hold token counts (numeric), got "
      f"{lengths.dtype}.",
      TypeError,
    )
  lengths = checks.broadcast_to(
    arg, lengths.astype(like.dtype), like.shape, same_rank=True
  )
  return jnp.maximum(lengths, 1)


def _sorted_difference(
  x: jax.Array, y: jax.Array, keep: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """``sort(x) − sort(y)`` over the kept entries (AOT's quantile matching).

  Masked entries are left out of both sorts: the ``k`` kept entries fill
  slots ``0 … k−1`` of the result (the rest hold 0); also returns, for each
  position, the slot its value is read from (its rank among the kept
  entries in input order).
  """
  top = jnp.asarray(jnp.inf, x.dtype)
  x_sorted = jnp.sort(jnp.where(keep, x, top))
  y_sorted = jnp.sort(jnp.where(keep, y, top))
  filled = jnp.arange(x.shape[0]) < jnp.sum(keep)
  # inf − inf in the unfilled slots: replaced (their cotangent is 0).
  delta = jnp.where(filled, x_sorted - y_sorted, 0)
  slot = jnp.maximum(jnp.cumsum(keep) - 1, 0)
  return delta, slot


@loss(
  policy_chosen_logps=value_checks.log_probabilities,
  policy_rejected_logps=value_checks.log_probabilities,
  reference_chosen_logps=value_checks.log_probabilities,
  reference_rejected_logps=value_checks.log_probabilities,
  chosen_lengths=value_checks.nonnegative,
  rejected_lengths=value_checks.nonnegative,
)
def dpo_loss(
  policy_chosen_logps: ArrayLike,
  policy_rejected_logps: ArrayLike,
  reference_chosen_logps: ArrayLike,
  reference_rejected_logps: ArrayLike,
  *,
  beta: ArrayLike = 0.1,
  label_smoothing: ArrayLike = 0.0,
  loss_type: DpoLossType = "sigmoid",
  discopop_tau: ArrayLike | None = None,
  chosen_lengths: ArrayLike | None = None,
  rejected_lengths: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Direct Preference Optimization loss and its variants (every loss type
  of trl 1.16's ``DPOTrainer``), per preference pair.

  With the log-ratios :math:`c = \log\pi_w - \log\pi^\text{ref}_w`,
  :math:`r = \log\pi_l - \log\pi^\text{ref}_l`, :math:`z = c - r`,
  :math:`\varepsilon` = ``label_smoothing`` and
  :math:`\mathrm{cdpo}_\varepsilon(u) = -(1 - \varepsilon)\log\sigma(u)
  - \varepsilon\log\sigma(-u)`:

  .. math::
    \begin{aligned}
    \texttt{sigmoid:}\ & \mathrm{cdpo}_\varepsilon(\beta z)
        \quad (\text{DPO}; \varepsilon > 0: \text{cDPO}) \\
    \texttt{robust:}\ & \big(-(1 - \varepsilon) \log\sigma(\beta z)
        + \varepsilon \log\sigma(-\beta z)\big) / (1 - 2\varepsilon)
        \quad (\text{rDPO}) \\
    \texttt{hinge:}\ & \max(0, 1 - \beta z) \quad (\text{SLiC}) \\
    \texttt{ipo:}\ & \big(z - 1 / (2\beta)\big)^2 \quad (\text{IPO}) \\
    \texttt{exo\_pair:}\ & \textstyle\sum_{s = \pm 1} \sigma(s\beta z)
        \big(\log\sigma(s\beta z) - \log p_s\big), \quad
        p_{+1} = 1 - \varepsilon,\ p_{-1} = \varepsilon \quad (\text{EXO}) \\
    \texttt{nca\_pair:}\ & -\log\sigma(\beta c) - \tfrac12\log\sigma(-\beta c)
        - \tfrac12\log\sigma(-\beta r) \quad (\text{NCA}) \\
    \texttt{bco\_pair:}\ & -\log\sigma(\beta c) - \log\sigma(-\beta r)
        \quad (\text{BCO, no running mean}) \\
    \texttt{sppo\_hard:}\ & \big(c - \tfrac{1}{2\beta}\big)^2
        + \big(r + \tfrac{1}{2\beta}\big)^2 \quad (\text{SPPO}) \\
    \texttt{aot:}\ & \mathrm{cdpo}_\varepsilon\big(\beta\,
        (\mathrm{sort}(\log\pi_w - \log\pi_l)
        - \mathrm{sort}(\log\pi^\text{ref}_w - \log\pi^\text{ref}_l))_i\big)
        \quad (\text{AOT}) \\
    \texttt{aot\_unpaired:}\ & \mathrm{cdpo}_\varepsilon\big(\beta\,
        (\mathrm{sort}(c) - \mathrm{sort}(r))_i\big) \\
    \texttt{apo\_zero:}\ & 1 - \sigma(\beta c) + \sigma(\beta r)
        \quad (\text{APO-zero}) \\
    \texttt{apo\_down:}\ & \sigma(\beta c) + 1 - \sigma(\beta z)
        \quad (\text{APO-down}) \\
    \texttt{discopop:}\ & -\log\sigma(\beta z)\,(1 - \sigma(\beta z / \tau))
        + e^{-\beta z} \sigma(\beta z / \tau) \quad (\text{DiscoPOP}) \\
    \texttt{sigmoid\_norm:}\ & -\log\sigma\big(\beta\,(c / n_w - r / n_l)\big)
    \end{aligned}

  ``"aot"`` and ``"aot_unpaired"`` are batch-level losses: they sort over
  the batch (the inputs must be 1-D ``[batch]``; ``jax.vmap`` over other
  axes), so value ``i`` belongs to the ``i``-th quantiles, not to pair
  ``i``. ``where`` is honoured before sorting: masked pairs take no part in
  either sort and get value 0; the ``k`` kept positions receive the values
  of ranks ``0 … k−1`` in input order, so ``where`` gives what slicing the
  masked pairs out gives. ``weights`` are refused for them. ``"discopop"``
  computes :math:`e^{-\beta z}\sigma(\beta z/\tau)` as
  :math:`\exp(-\beta z + \log\sigma(\beta z/\tau))`, finite where trl's
  product is :math:`\infty \cdot 0`.

  Args:
    policy_chosen_logps: ``[...]`` floating :math:`\log\pi(y_w \mid x)`, the
      policy's summed log-probability of each chosen completion.
    policy_rejected_logps: ``[...]`` :math:`\log\pi(y_l \mid x)`.
    reference_chosen_logps: ``[...]`` the same under the reference model.
    reference_rejected_logps: ``[...]`` the same under the reference model.
    beta: :math:`\beta > 0` (may be traced); IPO's :math:`\tau`.
    label_smoothing: :math:`\varepsilon`: in [0, 1] for ``"sigmoid"``,
      ``"aot"``, ``"aot_unpaired"``; [0, 0.5) for ``"robust"`` (the assumed
      probability of a flipped label); (0, 1) and required for
      ``"exo_pair"`` (EXO suggests 1e-3); must be 0 for the other types.
    loss_type: one of the types above (static).
    discopop_tau: DiscoPOP's :math:`\tau > 0`, ``"discopop"`` only;
      ``None`` means 0.05 (trl's default and the paper's).
    chosen_lengths: token counts :math:`n_w` of the chosen completions,
      ``[...]`` or a scalar (integer or float; clamped at 1 as trl does):
      required for ``"sigmoid_norm"``; optional for ``"ipo"``, where they
      give trl's per-token IPO (:math:`z = c / n_w - r / n_l`); an error
      otherwise.
    rejected_lengths: token counts :math:`n_l`, with ``chosen_lengths``.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-pair loss, or a scalar for ``"sum"``/``"mean"``.

  Matches trl 1.16's ``DPOTrainer._compute_loss`` (``f_divergence_type=
  "reverse_kl"``, one loss type, no WPO weighting) for each type, whose
  ``per_sequence_loss.mean()`` is ``"mean"`` here, with two documented
  differences that keep the papers' definitions: ``"sigmoid"`` applies
  ``label_smoothing`` as cDPO (trl 1.16's ignores it; earlier trl applied
  it), and ``"ipo"`` without lengths is the paper's IPO on the log-ratios
  given (trl 1.16 divides each log-ratio by its completion's token count:
  pass the lengths, or length-averaged log-probabilities, to get it).
  ``"sigmoid_norm"`` takes the token counts rather than averaged
  log-probabilities so that it cannot silently become ``"sigmoid"``. No
  gradient is stopped: the reference log-probabilities come from a frozen
  model.

  >>> import jax.numpy as jnp, jaxloss
  >>> loss = jaxloss.dpo_loss(jnp.array([-10.0]), jnp.array([-12.0]),
  ...                         jnp.array([-11.0]), jnp.array([-11.0]), beta=0.5)
  >>> print(f"{float(loss[0]):.4f}")  # -log σ(0.5 · 2)
  0.3133
  >>> loss = jaxloss.dpo_loss(jnp.array([-10.0]), jnp.array([-12.0]),
  ...                         jnp.array([-11.0]), jnp.array([-11.0]), beta=0.5,
  ...                         loss_type="apo_zero")
  >>> print(f"{float(loss[0]):.4f}")  # 1 - σ(0.5) + σ(-0.5)
  0.7551

  References:
    Rafailov et al., `Direct Preference Optimization: Your Language Model is
    Secretly a Reward Model <https://arxiv.org/abs/2305.18290>`_, 2023;
    Mitchell, `A Note on DPO with Noisy Preferences & Relationship to IPO
    <https://ericmitchell.ai/cdpo.pdf>`_, 2023;
    Azar et al., `A General Theoretical Paradigm to Understand Learning from
    Human Preferences <https://arxiv.org/abs/2310.12036>`_, 2023;
    Chowdhury, Kini and Natarajan, `Provably Robust DPO: Aligning Language
    Models with Noisy Feedback <https://arxiv.org/abs/2403.00409>`_, 2024;
    Zhao et al., `SLiC-HF: Sequence Likelihood Calibration with Human
    Feedback <https://arxiv.org/abs/2305.10425>`_, 2023;
    Ji et al., `Towards Efficient Exact Optimization of Language Model
    Alignment <https://arxiv.org/abs/2402.00856>`_, 2024 (EXO);
    Chen et al., `Noise Contrastive Alignment of Language Models with
    Explicit Rewards <https://arxiv.org/abs/2402.05369>`_, 2024 (NCA);
    Jung et al., `Binary Classifier Optimization for Large Language Model
    Alignment <https://arxiv.org/abs/2404.04656>`_, 2024 (BCO);
    Wu et al., `Self-Play Preference Optimization for Language Model
    Alignment <https://arxiv.org/abs/2405.00675>`_, 2024 (SPPO);
    Melnyk et al., `Distributional Preference Alignment of LLMs via Optimal
    Transport <https://arxiv.org/abs/2406.05882>`_, 2024 (AOT);
    D'Oosterlinck et al., `Anchored Preference Optimization and Contrastive
    Revisions <https://arxiv.org/abs/2408.06266>`_, 2024 (APO);
    Chris Lu et al., `Discovering Preference Optimization Algorithms with and
    for Large Language Models <https://arxiv.org/abs/2406.08414>`_, 2024
    (DiscoPOP).
  """
  _check_dpo_options(
    loss_type,
    beta,
    label_smoothing,
    discopop_tau,
    (chosen_lengths, rejected_lengths),
    weights,
  )
  chosen, rejected, ref_chosen, ref_rejected = _dpo_inputs(
    policy_chosen_logps,
    policy_rejected_logps,
    reference_chosen_logps,
    reference_rejected_logps,
  )
  b = numerics.like(beta, chosen)
  eps = numerics.like(label_smoothing, chosen)
  c = chosen - ref_chosen
  r = rejected - ref_rejected
  if chosen_lengths is not None and rejected_lengths is not None:
    c = c / _lengths("chosen_lengths", chosen_lengths, chosen)
    r = r / _lengths("rejected_lengths", rejected_lengths, chosen)
  if loss_type in _SORTED:
    checks.rank("policy_chosen_logps", chosen, 1)
    keep = (
      jnp.ones(chosen.shape, bool)
      if where is None
      else checks.broadcast_mask("where", where, chosen.shape, same_rank=True)
    )
    if loss_type == "aot":
      delta, slot = _sorted_difference(
        chosen - rejected, ref_chosen - ref_rejected, keep
      )
    else:
      delta, slot = _sorted_difference(c, r, keep)
    log_win, log_lose = numerics.log_sigmoid_pair(b * delta)
    values = (-(1 - eps) * log_win - eps * log_lose)[slot]
    return reduce(values, reduction, where=keep)
  z = c - r
  u = b * z
  if loss_type == "ipo":
    values = jnp.square(z - 1 / (2 * b))
  elif loss_type == "hinge":
    values = jax.nn.relu(1 - u)
  elif loss_type == "sppo_hard":
    values = jnp.square(c - 0.5 / b) + jnp.square(r + 0.5 / b)
  elif loss_type == "nca_pair":
    values = (
      -jax.nn.log_sigmoid(b * c)
      - 0.5 * jax.nn.log_sigmoid(-b * c)
      - 0.5 * jax.nn.log_sigmoid(-b * r)
    )
  elif loss_type == "bco_pair":
    values = -jax.nn.log_sigmoid(b * c) - jax.nn.log_sigmoid(-b * r)
  elif loss_type == "apo_zero":  # 1 − σ(βc) + σ(βr)
    values = jax.nn.sigmoid(-b * c) + jax.nn.sigmoid(b * r)
  elif loss_type == "apo_down":  # σ(βc) + 1 − σ(βz)
    values = jax.nn.sigmoid(b * c) + jax.nn.sigmoid(-u)
  elif loss_type == "discopop":
    tau = numerics.like(
      DISCOPOP_TAU if discopop_tau is None else discopop_tau, c
    )
    values = jax.nn.softplus(-u) * jax.nn.sigmoid(-u / tau) + jnp.exp(
      -u + jax.nn.log_sigmoid(u / tau)
    )
  elif loss_type == "sigmoid_norm":
    values = -jax.nn.log_sigmoid(u)
  else:
    log_win, log_lose = numerics.log_sigmoid_pair(u)
    if loss_type == "sigmoid":
      values = -(1 - eps) * log_win - eps * log_lose
    elif loss_type == "robust":
      values = (-(1 - eps) * log_win + eps * log_lose) / (1 - 2 * eps)
    else:  # exo_pair: KL(softmax(βz) over {w, l} ‖ (1 − ε, ε))
      values = jnp.exp(log_win) * (log_win - jnp.log1p(-eps)) + jnp.exp(
        log_lose
      ) * (log_lose - jnp.log(eps))
  return reduce(values, reduction, weights=weights, where=where)


@loss(
  policy_chosen_logps=value_checks.log_probabilities,
  policy_rejected_logps=value_checks.log_probabilities,
  reference_chosen_logps=value_checks.log_probabilities,
  reference_rejected_logps=value_checks.log_probabilities,
)
def dpo_implicit_rewards(
  policy_chosen_logps: ArrayLike,
  policy_rejected_logps: ArrayLike,
  reference_chosen_logps: ArrayLike,
  reference_rejected_logps: ArrayLike,
  *,
  beta: ArrayLike = 0.1,
) -> tuple[jax.Array, jax.Array]:
  r"""DPO's implicit rewards of the chosen and rejected completions, for
  logging.

  .. math:: r_w = \beta (\log\pi_w - \log\pi^\text{ref}_w), \qquad
            r_l = \beta (\log\pi_l - \log\pi^\text{ref}_l)

  Trainers log their means, the margin :math:`r_w - r_l` and the accuracy
  :math:`r_w > r_l`. Gradients are stopped (these are metrics).

  Args:
    policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
      reference_rejected_logps: ``[...]`` as in :func:`dpo_loss`.
    beta: :math:`\beta` (may be traced).

  Returns:
    ``(chosen_rewards, rejected_rewards)``, each ``[...]``.

  Matches the ``chosen_rewards``/``rejected_rewards`` that trl 1.16's
  ``DPOTrainer._compute_loss`` logs (``rewards/chosen``, ...).

  >>> import jax.numpy as jnp, jaxloss
  >>> chosen, rejected = jaxloss.dpo_implicit_rewards(
  ...     jnp.array([-10.0]), jnp.array([-12.0]), jnp.array([-11.0]),
  ...     jnp.array([-11.0]), beta=0.5)
  >>> print(float(chosen[0]), float(rejected[0]))
  0.5 -0.5

  References:
    Rafailov et al., `Direct Preference Optimization: Your Language Model is
    Secretly a Reward Model <https://arxiv.org/abs/2305.18290>`_, 2023.
  """
  chosen, rejected, ref_chosen, ref_rejected = _dpo_inputs(
    policy_chosen_logps,
    policy_rejected_logps,
    reference_chosen_logps,
    reference_rejected_logps,
  )
  b = numerics.like(beta, chosen)
  return (
    jax.lax.stop_gradient(b * (chosen - ref_chosen)),
    jax.lax.stop_gradient(b * (rejected - ref_rejected)),
  )
