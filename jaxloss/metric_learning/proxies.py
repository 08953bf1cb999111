"""Losses against class representatives: learned proxies (Proxy-NCA) and
speaker centroids computed from the batch (GE2E)."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import (
  checks,
  numerics,
  value_checks,
)
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
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


__all__ = ["ge2e_loss", "proxy_nca_loss"]
