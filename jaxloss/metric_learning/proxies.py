"""Losses against class representatives: learned proxies (Proxy-NCA) and
speaker centroids computed from the batch (GE2E)."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import (
  checks,
  in_batch,
  numerics,
  value_checks,
)
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, split_where
from jaxloss.metric_learning._cross_entropy import masked_cross_entropy


@loss(labels=value_checks.class_index("proxies", axis_arg=None, default_axis=0))
def proxy_nca_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  proxies: ArrayLike,
  *,
  temperature: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Proxy-NCA loss: a softmax over negative squared distances to proxies.

  .. math::
    \ell = -\log \frac{\exp(-\|x - p_y\|^2 / T)}
                      {\sum_c \exp(-\|x - p_c\|^2 / T)}

  The denominator runs over all proxies, the positive included (as in
  ProxyNCA++ and pytorch-metric-learning); the paper's NCA form leaves the
  positive out. Embeddings and proxies are used as given: normalise them
  first for the paper's setting.

  Supported input range: Squared distances are computed in the inputs' dtype, so
  in float32 inputs are supported up to magnitude 1e15 (the checked range;
  products overflow from about 1.8e19).

  Args:
    embeddings: ``[batch, dim]`` floating embeddings.
    labels: ``[batch]`` integer class labels in ``[0, num_classes)``.
    proxies: ``[num_classes, dim]`` one proxy per class (not batch-shaped).
    temperature: ``T > 0``.
    where, weights, reduction: see :func:`jaxloss.reduce` (``where`` is
      ``[batch]``); default ``"none"``.

  Returns:
    ``[batch]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  The formula of ``pytorch_metric_learning.losses.ProxyNCALoss`` (softmax
  over all proxies) on normalised inputs, with ``softmax_scale =
  1 / temperature``; tested against the formula, not against that package.

  >>> import jax.numpy as jnp, jaxloss
  >>> proxies = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jaxloss.proxy_nca_loss(jnp.array([[1.0, 0.0]]), jnp.array([0]), proxies)
  Array([0.126928], dtype=float32)

  References:
    Movshovitz-Attias, Toshev, Leung, Ioffe and Singh, `No Fuss Distance
    Metric Learning using Proxies <https://arxiv.org/abs/1703.07464>`_, 2017.
  """
  embeddings, proxies = checks.floats(embeddings=embeddings, proxies=proxies)
  labels = checks.as_labels("labels", labels)
  checks.rank("embeddings", embeddings, 2)
  checks.shape(
    "labels", labels, embeddings.shape[:1], "one label per embedding"
  )
  checks.shape(
    "proxies", proxies, (None, embeddings.shape[1]), "[num_classes, dim]"
  )
  checks.positive("temperature", temperature)
  # −‖x − p_c‖² without ‖x‖², which is the same for every class.
  logits = (
    2 * jnp.matmul(embeddings, proxies.T)
    - jnp.sum(jnp.square(proxies), axis=-1)[None, :]
  )
  logits = logits / numerics.like(temperature, embeddings.dtype)
  values = masked_cross_entropy(logits, labels, None)
  return reduce(values, reduction, weights=weights, where=where)


@loss(w=value_checks.positive)
def ge2e_loss(
  embeddings: ArrayLike,
  *,
  w: ArrayLike = 10.0,
  b: ArrayLike = -5.0,
  method: Literal["softmax", "contrast"] = "softmax",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Generalized end-to-end (GE2E) loss for speaker verification.

  .. math::
    S_{ji,k} = w \cos(e_{ji}, c_k) + b, \qquad
    c_j^{(-i)} = \frac{1}{M - 1} \sum_{m \ne i} e_{jm} \ \text{(own speaker)}

  .. math::
    \ell^{\text{softmax}}_{ji} = -S_{ji,j} + \log \sum_k \exp S_{ji,k},
    \qquad
    \ell^{\text{contrast}}_{ji} = 1 - \sigma(S_{ji,j})
                                  + \max_{k \ne j} \sigma(S_{ji,k})

  where ``c_k`` is the centroid of speaker ``k``'s utterances, and the own
  speaker's centroid leaves utterance ``i`` out.

  Args:
    embeddings: ``[speakers, utterances, dim]`` floating utterance
      embeddings (at least 2 utterances per speaker).
    w: the similarity scale (the paper keeps it > 0).
    b: the similarity bias.
    method: ``"softmax"`` or ``"contrast"``.
    where: optional ``[speakers, utterances]`` mask, or ``[speakers]`` (or
      ``[speakers, 1]``) to drop whole speakers; a masked utterance is neither
      an example nor part of a centroid, so ``where`` equals slicing.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[speakers, utterances]`` per-utterance loss, or a scalar for
    ``"sum"``/``"mean"``. An utterance whose speaker has no other utterance,
    or with no other speaker in the batch, has value 0 and is left out of
    ``"mean"``.

  Matches the paper's equations (6) and (7); no packaged reference
  implementation is used.

  >>> import jax.numpy as jnp, jaxloss
  >>> e = jnp.array([[[1.0, 0.0], [2.0, 0.0]], [[0.0, 1.0], [0.0, 3.0]]])
  >>> jaxloss.ge2e_loss(e, w=1.0, b=0.0)  # log(1 + exp(-1))
  Array([[0.31326163, 0.31326163],
         [0.31326163, 0.31326163]], dtype=float32)
  >>> jaxloss.ge2e_loss(e, w=1.0, b=0.0, method="contrast")
  Array([[0.7689414, 0.7689414],
         [0.7689414, 0.7689414]], dtype=float32)

  References:
    Wan, Wang, Papir and Lopez Moreno, `Generalized End-to-End Loss for
    Speaker Verification <https://arxiv.org/abs/1710.10467>`_, 2018.
  """
  embeddings = checks.as_float("embeddings", embeddings)
  checks.rank("embeddings", embeddings, 3)
  checks.option("method", method, ("softmax", "contrast"))
  checks.positive("w", w)
  speakers, utterances, _ = embeddings.shape
  if utterances < 2:
    raise checks.fail(
      "argument `embeddings` must hold at least 2 utterances per speaker, "
      f"got shape {embeddings.shape}."
    )
  dtype = embeddings.dtype
  if where is None:
    keep = jnp.ones((speakers, utterances), bool)
  else:
    where = checks.as_mask("where", where)
    if where.ndim == 1:  # a [speakers] mask
      where = where[:, None]
    keep = checks.broadcast_mask("where", where, (speakers, utterances))
  kept = jnp.where(keep[..., None], embeddings, 0)
  counts = jnp.sum(keep, axis=1, dtype=dtype)  # [speakers]
  totals = jnp.sum(kept, axis=1)  # [speakers, dim]
  centroids = numerics.safe_divide(totals, counts[:, None])
  own = numerics.safe_divide(
    totals[:, None, :] - kept, counts[:, None, None] - 1
  )
  unit = numerics.l2_normalize(embeddings)
  cosines = jnp.einsum("jid,kd->jik", unit, numerics.l2_normalize(centroids))
  own_cosines = jnp.sum(unit * numerics.l2_normalize(own), axis=-1)
  is_own = jnp.eye(speakers, dtype=bool)[:, None, :]  # [speakers, 1, speakers]
  scale, bias = numerics.like(w, dtype), numerics.like(b, dtype)
  own_or_other = jnp.where(is_own, own_cosines[..., None], cosines)
  similarities: jax.Array = scale * own_or_other + bias
  positive = scale * own_cosines + bias
  others = (counts > 0)[None, None, :] & ~is_own  # candidate speakers k != j
  valid = keep & (counts[:, None] >= 2) & jnp.any(others, axis=-1)
  candidates = jnp.broadcast_to(others, similarities.shape)
  if method == "softmax":  # the own speaker and the others present.
    values = (
      numerics.masked_logsumexp(similarities, candidates | is_own) - positive
    )
  else:
    values = (
      1
      - jax.nn.sigmoid(positive)
      + numerics.masked_max(jax.nn.sigmoid(similarities), candidates)
    )
  return reduce(values, reduction, weights=weights, where=valid)


# ---- issue 22: Proxy-Anchor and SoftTriple (pytorch-metric-learning) ---------


@loss(labels=value_checks.class_index("proxies", axis_arg=None, default_axis=0))
def proxy_anchor_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  proxies: ArrayLike,
  *,
  margin: ArrayLike = 0.1,
  alpha: ArrayLike = 32.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Proxy-Anchor loss: each proxy is an anchor against the batch.

  .. math::
    \mathcal{L} = \frac{1}{|P^+|} \sum_{c \in P^+} \log\Big(1
        + \sum_{i:\, y_i = c} w_i e^{-\alpha (s_{ic} - \delta)}\Big)
      + \frac{1}{C} \sum_{c} \log\Big(1
        + \sum_{i:\, y_i \ne c} w_i e^{\alpha (s_{ic} + \delta)}\Big)

  with ``s`` the cosine similarity of embeddings and proxies, ``P⁺`` the
  proxies with an example in the batch and ``C`` the number of proxies. The
  log of a sum over the batch does not split into per-example terms, so the
  value is a batch-level scalar.

  Args:
    embeddings: ``[batch, dim]`` floating embeddings (normalised here).
    labels: ``[batch]`` integer class labels in ``[0, num_classes)``.
    proxies: ``[num_classes, dim]`` one proxy per class (normalised here).
    margin: the margin ``δ``.
    alpha: the scale ``α > 0``.
    where: optional ``[batch]`` mask; a masked example takes no part
      (``where`` equals slicing).
    weights: optional ``[batch]`` example weights ``w ≥ 0`` (default 1): each
      example's term in the sums is multiplied by its weight; a weight of 0
      is the same as masking the example out.
    reduction: checked for the common signature; the value is already a
      scalar, the same for ``"none"``, ``"sum"`` and ``"mean"``.

  Returns:
    A scalar; 0 when no example takes part. NaN when a kept example's label
    is outside ``[0, num_classes)``.

  Matches ``pytorch_metric_learning.losses.ProxyAnchorLoss`` (``margin=0.1``,
  ``alpha=32``, ``CosineSimilarity``, ``DivisorReducer``: the positive terms
  divided by ``|P⁺|``, the negative ones by ``C``), given its ``proxies``.

  >>> import jax.numpy as jnp, jaxloss
  >>> proxies = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> x = jnp.array([[1.0, 0.1], [0.1, 1.0]])
  >>> jaxloss.proxy_anchor_loss(x, jnp.array([0, 1]), proxies)
  Array(6.3858056, dtype=float32)

  References:
    Kim, Kim, Cho and Kwak, `Proxy Anchor Loss for Deep Metric Learning
    <https://arxiv.org/abs/2003.13911>`_, 2020.
  """
  embeddings, proxies = checks.floats(embeddings=embeddings, proxies=proxies)
  labels = checks.as_labels("labels", labels)
  checks.rank("embeddings", embeddings, 2)
  checks.shape(
    "labels", labels, embeddings.shape[:1], "one label per embedding"
  )
  checks.shape(
    "proxies", proxies, (None, embeddings.shape[1]), "[num_classes, dim]"
  )
  checks.positive("alpha", alpha)
  num_classes = proxies.shape[0]
  dtype = embeddings.dtype
  keep = in_batch.example_mask(where, embeddings.shape[:1])
  log_weights = jnp.zeros(keep.shape, dtype)
  if weights is not None:
    w = checks.broadcast_weights(
      "weights", weights, log_weights, same_rank=True
    )
    keep = keep & (w > 0)
    log_weights = jnp.log(jnp.where(keep, w, 1))
  cosines = jnp.matmul(
    numerics.l2_normalize(embeddings),
    numerics.l2_normalize(proxies).T,
    precision=jax.lax.Precision.HIGHEST,
  )  # [batch, num_classes]
  is_label = jax.nn.one_hot(labels, num_classes, dtype=bool)
  positives = (is_label & keep[:, None]).T  # [num_classes, batch]
  negatives = (~is_label & keep[:, None]).T
  a, m = numerics.like(alpha, dtype), numerics.like(margin, dtype)
  logits = cosines.T  # [num_classes, batch]

  def log1p_sum_exp(x: jax.Array, mask: jax.Array) -> jax.Array:
    lse = numerics.masked_logsumexp(x + log_weights[None, :], mask)
    return jnp.where(jnp.any(mask, axis=-1), jnp.logaddexp(0, lse), 0)

  positive = log1p_sum_exp(-a * (logits - m), positives)
  negative = log1p_sum_exp(a * (logits + m), negatives)
  with_positives = jnp.sum(jnp.any(positives, axis=-1), dtype=dtype)
  value = numerics.safe_divide(jnp.sum(positive), with_positives) + jnp.sum(
    negative
  ) / max(num_classes, 1)
  invalid = jnp.any(keep & ~labels_lib.valid(labels, num_classes))
  return jnp.where(invalid, jnp.asarray(jnp.nan, dtype), value)


def soft_triple_similarities(cosines: jax.Array, gamma: ArrayLike) -> jax.Array:
  """SoftTriple's class similarities ``[..., num_classes]``: the softmax
  (temperature ``gamma``) over each class's centres of their cosines,
  weighting those cosines (``jaxloss.nn.SoftTriple.logits``)."""
  soft = jax.nn.softmax(cosines / numerics.like(gamma, cosines), axis=-1)
  return jnp.sum(soft * cosines, axis=-1)


@loss(
  cosines=value_checks.bounded(-1, 1),
  labels=value_checks.class_index("cosines", axis_arg=None, default_axis=-2),
)
def soft_triple_loss(
  cosines: ArrayLike,
  labels: ArrayLike,
  *,
  scale: ArrayLike = 20.0,
  gamma: ArrayLike = 0.1,
  margin: ArrayLike = 0.01,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""SoftTriple loss: a softmax cross-entropy over classes that each have
  several centres, the class similarity a soft maximum over its centres.

  .. math::
    S_c = \sum_k \frac{e^{\cos\theta_{ck} / \gamma}}
                        {\sum_{k'} e^{\cos\theta_{ck'} / \gamma}}
          \cos\theta_{ck}, \qquad
    \ell = -\log \frac{e^{\lambda (S_y - \delta)}}
                        {e^{\lambda (S_y - \delta)}
                         + \sum_{c \ne y} e^{\lambda S_c}}

  Args:
    cosines: ``[batch, num_classes, centers_per_class]`` cosines between the
      embeddings and each class's centres (``jaxloss.nn.SoftTriple`` computes
      them from learned centres).
    labels: ``[batch]`` integer class labels.
    scale: ``λ > 0``, the logit scale (pytorch-metric-learning's ``la``).
    gamma: ``γ > 0``, the temperature of the soft maximum over centres.
    margin: ``δ``, subtracted from the label's similarity.
    where: optional ``[batch]`` mask (drops examples) or ``[batch,
      num_classes]`` mask (drops classes).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[batch]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``pytorch_metric_learning.losses.SoftTripleLoss`` (``la=20``,
  ``gamma=0.1``, ``margin=0.01``, ``CosineSimilarity``, ``MeanReducer``: its
  value is ``reduction="mean"``), whose centres ``fc`` are ``[dim,
  num_classes · centers_per_class]``, class-major. Like it, without the
  paper's regulariser that merges similar centres (``τ``).

  >>> import jax.numpy as jnp, jaxloss
  >>> cosines = jnp.array([[[0.9, 0.1], [0.2, 0.0]]])  # 2 classes, 2 centres
  >>> jaxloss.soft_triple_loss(cosines, jnp.array([0]))
  Array([6.338532e-07], dtype=float32)

  References:
    Qian, Shang, Sun, Hu, Li and Jin, `SoftTriple Loss: Deep Metric Learning
    Without Triplet Sampling <https://arxiv.org/abs/1909.05235>`_, 2019.
  """
  cosines = checks.as_float("cosines", cosines)
  labels = checks.as_labels("labels", labels)
  checks.rank("cosines", cosines, 3)
  checks.labels_for(labels, cosines, (1, 2), "cosines")
  checks.positive("scale", scale)
  checks.positive("gamma", gamma)
  elements, examples = split_where(where, cosines.shape[:-1], -1)
  dtype = cosines.dtype
  similarities = soft_triple_similarities(cosines, gamma)
  is_label = jax.nn.one_hot(labels, cosines.shape[1], dtype=bool)
  logits = numerics.like(scale, dtype) * (
    similarities - jnp.where(is_label, numerics.like(margin, dtype), 0)
  )
  values = masked_cross_entropy(logits, labels, elements)
  return reduce(values, reduction, weights=weights, where=examples)


__all__ = [
  "ge2e_loss",
  "proxy_anchor_loss",
  "proxy_nca_loss",
  "soft_triple_loss",
]
