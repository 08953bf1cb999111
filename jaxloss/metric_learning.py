"""Metric-learning losses: triplets, pairs, proxies, angular margins.

Every loss returns per-example values and reduces through
:func:`jaxloss.reduce` (``where``, ``weights``, ``reduction``). In-batch losses
(mining, N-pair, GE2E, uniformity) read a ``[batch]`` ``where`` as removing
the example both as an anchor and as a candidate, so ``where`` equals slicing.
``triplet_margin_loss`` keeps ``optax.losses``' positional signature, defaults
and values.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxloss import _metric_mining
from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import reduction as reduction_lib
from jaxloss._metric_mining import *  # noqa: F403
from jaxloss._metric_mining import (
  is_static,
  masked_cross_entropy,
  masked_max,
  normalize,
)


def _safe_power(x: jax.Array, exponent) -> jax.Array:
  """``x ** exponent`` for ``x >= 0``; value and gradient 0 at ``x = 0``."""
  positive = x > 0
  return jnp.where(positive, jnp.power(jnp.where(positive, x, 1), exponent), 0)


def _feature_where(name, where, shape):
  """``(element_mask, example_mask)`` for a loss reducing the last axis."""
  return reduction_lib.split_where(name, where, shape, -1)


def _squared_distance(x, y, elements):
  """``Σ (x − y)²`` over the last axis, over the unmasked features."""
  squares = jnp.square(x - y)
  if elements is not None:
    squares = jnp.where(elements, squares, 0)
  return jnp.sum(squares, axis=-1)


def _vectors(name, arg, x):
  """``x`` holds vectors along its last axis (rank >= 1)."""
  if x.ndim < 1:
    raise ValueError(
      f"{name}: argument `{arg}` must have rank >= 1 (vectors "
      f"along the last axis), got shape {x.shape}."
    )


def triplet_margin_loss(
  anchors,
  positives,
  negatives,
  axis=-1,
  norm_degree=2,
  margin=1.0,
  eps=1e-6,
  *,
  swap=False,
  where=None,
  weights=None,
  reduction="none",
):
  r"""Triplet margin loss with ``L_p`` distances.

  .. math::
    \ell = \big[\, d(a, p) - d(a, n) + m \big]_+, \qquad
    d(x, y) = \Big(\sum_k |x_k - y_k|^p + \varepsilon\Big)^{1/p}

  With ``swap=True`` the negative distance is ``min(d(a, n), d(p, n))``.

  Args:
    anchors: ``[..., dim, ...]`` floating anchor embeddings.
    positives: positive embeddings, same shape.
    negatives: negative embeddings, same shape.
    axis: the feature axis (an int).
    norm_degree: the degree ``p > 0`` of the norm.
    margin: the margin ``m``.
    eps: ``ε``, added to the sum of powers (as optax does).
    swap: use the distance swap of Balntas et al.
    where: boolean mask of the inputs' shape (drops features from the
      distances) or of the per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    The inputs' shape without ``axis``, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.triplet_margin_loss`` for even ``norm_degree`` (optax
  raises ``a − p`` to odd powers without an absolute value; jaxloss uses
  ``|a − p|^p``). Matches ``torch.nn.functional.triplet_margin_loss``, ``swap``
  included, with ``eps=0``; for ``eps > 0`` torch adds ``eps`` to the
  difference, ``‖a − p + ε‖_p``, and the two differ by ``O(ε)``.

  >>> import jax.numpy as jnp, jaxloss
  >>> anchors = jnp.array([[0.0, 0.0], [1.0, 1.0]])
  >>> positives = jnp.array([[0.1, 0.1], [1.1, 1.1]])
  >>> negatives = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jaxloss.triplet_margin_loss(anchors, positives, negatives)
  Array([0.14142442, 0.14142442], dtype=float32)

  References:
    Balntas, Riba, Ponsa and Mikolajczyk, `Learning local feature descriptors
    with triplets and shallow convolutional neural networks
    <https://bmva-archive.org.uk/bmvc/2016/papers/paper119/>`_, 2016.
  """
  name = "triplet_margin_loss"
  anchors, positives, negatives = checks.same_shape_floats(
    name, anchors=anchors, positives=positives, negatives=negatives
  )
  axis = checks.canonical_axis(name, axis, anchors.ndim)
  checks.positive(name, "norm_degree", norm_degree)
  checks.nonnegative(name, "margin", margin)
  checks.nonnegative(name, "eps", eps)
  elements, examples = reduction_lib.split_where(
    name, where, anchors.shape, axis
  )
  p, margin, eps = (
    numerics.like(v, anchors.dtype) for v in (norm_degree, margin, eps)
  )

  def distance(x, y):
    powers = _safe_power(jnp.abs(x - y), p)
    if elements is not None:
      powers = jnp.where(elements, powers, 0)
    return _safe_power(jnp.sum(powers, axis=axis) + eps, 1 / p)

  negative = distance(anchors, negatives)
  if swap:
    negative = jnp.minimum(negative, distance(positives, negatives))
  values = jax.nn.relu(distance(anchors, positives) - negative + margin)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


@value_checks.value_rules(labels=value_checks.unit_interval)
def contrastive_loss(
  embeddings1,
  embeddings2,
  labels,
  *,
  margin=1.0,
  where=None,
  weights=None,
  reduction="none",
):
  r"""Contrastive (siamese) loss on pairs; label 1 means similar.

  .. math::
    \ell = y\, d^2 + (1 - y) \max(0, m - d)^2, \qquad d = \|x_1 - x_2\|_2

  Args:
    embeddings1: ``[..., dim]`` floating embeddings.
    embeddings2: ``[..., dim]`` embeddings, same shape.
    labels: ``[...]`` similarity in [0, 1] (1 similar, 0 dissimilar; float,
      int or bool).
    margin: the margin ``m`` beyond which dissimilar pairs cost nothing.
    where: boolean mask of the embeddings' shape (drops features) or of the
      labels' shape (drops pairs).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-pair loss, or a scalar for ``"sum"``/``"mean"``.

  Matches Hadsell et al. with the label flipped (their ``Y = 0`` is similar)
  and without their factors ½.

  >>> import jax.numpy as jnp, jaxloss
  >>> x1 = jnp.array([[0.0, 0.0], [0.0, 0.0]])
  >>> x2 = jnp.array([[0.3, 0.4], [0.3, 0.4]])
  >>> jaxloss.contrastive_loss(x1, x2, jnp.array([1, 0]))
  Array([0.25, 0.25], dtype=float32)

  References:
    Hadsell, Chopra and LeCun, `Dimensionality Reduction by Learning an
    Invariant Mapping <https://doi.org/10.1109/CVPR.2006.100>`_, 2006.
  """
  name = "contrastive_loss"
  embeddings1, embeddings2 = checks.same_shape_floats(
    name, embeddings1=embeddings1, embeddings2=embeddings2
  )
  _vectors(name, "embeddings1", embeddings1)
  labels = checks.as_targets(name, "labels", labels, embeddings1)
  checks.shape(
    name, "labels", labels, embeddings1.shape[:-1], "one label per pair"
  )
  checks.nonnegative(name, "margin", margin)
  margin = numerics.like(margin, embeddings1.dtype)
  elements, examples = _feature_where(name, where, embeddings1.shape)
  squared = _squared_distance(embeddings1, embeddings2, elements)
  dissimilar = jnp.square(jax.nn.relu(margin - numerics.safe_sqrt(squared)))
  values = labels * squared + (1 - labels) * dissimilar
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


def angular_loss(
  anchors,
  positives,
  negatives,
  *,
  alpha_degrees=45.0,
  where=None,
  weights=None,
  reduction="none",
):
  r"""Angular loss on triplets: bounds the angle at the negative.

  .. math::
    \ell = \big[\, \|x_a - x_p\|^2 - 4 \tan^2\alpha\, \|x_n - x_c\|^2 \big]_+,
    \qquad x_c = (x_a + x_p) / 2

  Args:
    anchors: ``[..., dim]`` floating anchor embeddings.
    positives: positive embeddings, same shape.
    negatives: negative embeddings, same shape.
    alpha_degrees: the angle bound ``α`` in degrees, in (0, 90).
    where: boolean mask of the inputs' shape (drops features) or of the
      per-example shape (drops triplets).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-triplet loss, or a scalar for ``"sum"``/``"mean"``.

  Matches the triplet (hinge) form of Wang et al.; their N-pair form, which
  ``pytorch_metric_learning.losses.AngularLoss`` implements, is not this one.

  >>> import jax.numpy as jnp, jaxloss
  >>> a = jnp.array([[1.0, 0.0]]); p = jnp.array([[-1.0, 0.0]])
  >>> jaxloss.angular_loss(a, p, jnp.array([[0.0, 0.5]]))
  Array([3.], dtype=float32)

  References:
    Wang, Zhou, Wen, Liu and Lin, `Deep Metric Learning with Angular Loss
    <https://arxiv.org/abs/1708.01682>`_, 2017.
  """
  name = "angular_loss"
  anchors, positives, negatives = checks.same_shape_floats(
    name, anchors=anchors, positives=positives, negatives=negatives
  )
  _vectors(name, "anchors", anchors)
  if is_static(alpha_degrees) and not 0 < alpha_degrees < 90:
    raise ValueError(
      f"{name}: `alpha_degrees` must lie in (0, 90), got {alpha_degrees}."
    )
  if is_static(alpha_degrees):
    tan_squared = math.tan(math.radians(alpha_degrees)) ** 2
  else:
    radians = jnp.deg2rad(numerics.like(alpha_degrees, anchors.dtype))
    tan_squared = jnp.square(jnp.tan(radians))
  elements, examples = _feature_where(name, where, anchors.shape)
  center = (anchors + positives) / 2
  values = jax.nn.relu(
    _squared_distance(anchors, positives, elements)
    - 4 * tan_squared * _squared_distance(negatives, center, elements)
  )
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


@value_checks.value_rules(
  labels=value_checks.class_index("proxies", axis_arg=None, default_axis=0)
)
def proxy_nca_loss(
  embeddings,
  labels,
  proxies,
  *,
  temperature=1.0,
  where=None,
  weights=None,
  reduction="none",
):
  r"""Proxy-NCA loss: a softmax over negative squared distances to proxies.

  .. math::
    \ell = -\log \frac{\exp(-\|x - p_y\|^2 / T)}
                      {\sum_c \exp(-\|x - p_c\|^2 / T)}

  The denominator runs over all proxies, the positive included (as in
  ProxyNCA++ and pytorch-metric-learning); the paper's NCA form leaves the
  positive out. Embeddings and proxies are used as given: normalise them
  first for the paper's setting.

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
  name = "proxy_nca_loss"
  embeddings, proxies = checks.floats(
    name, embeddings=embeddings, proxies=proxies
  )
  labels = checks.as_labels(name, "labels", labels)
  checks.rank(name, "embeddings", embeddings, 2)
  checks.shape(
    name, "labels", labels, embeddings.shape[:1], "one label per embedding"
  )
  checks.shape(
    name, "proxies", proxies, (None, embeddings.shape[1]), "[num_classes, dim]"
  )
  checks.positive(name, "temperature", temperature)
  # −‖x − p_c‖² without ‖x‖², which is the same for every class.
  logits = (
    2 * jnp.matmul(embeddings, proxies.T)
    - jnp.sum(jnp.square(proxies), axis=-1)[None, :]
  )
  logits = logits / numerics.like(temperature, embeddings.dtype)
  values = masked_cross_entropy(logits, labels, None)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


@value_checks.value_rules(w=value_checks.positive)
def ge2e_loss(
  embeddings,
  *,
  w=10.0,
  b=-5.0,
  method="softmax",
  where=None,
  weights=None,
  reduction="none",
):
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
  name = "ge2e_loss"
  embeddings = checks.as_float(name, "embeddings", embeddings)
  checks.rank(name, "embeddings", embeddings, 3)
  checks.option(name, "method", method, ("softmax", "contrast"))
  checks.positive(name, "w", w)
  speakers, utterances, _ = embeddings.shape
  if utterances < 2:
    raise ValueError(
      f"{name}: argument `embeddings` must hold at least 2 "
      f"utterances per speaker, got shape {embeddings.shape}."
    )
  dtype = embeddings.dtype
  if where is None:
    keep = jnp.ones((speakers, utterances), bool)
  else:
    where = checks.as_mask(name, "where", where)
    if where.ndim == 1:  # a [speakers] mask
      where = where[:, None]
    keep = checks.broadcast_mask(name, "where", where, (speakers, utterances))
  kept = jnp.where(keep[..., None], embeddings, 0)
  counts = jnp.sum(keep, axis=1, dtype=dtype)  # [speakers]
  totals = jnp.sum(kept, axis=1)  # [speakers, dim]
  centroids = numerics.safe_divide(totals, counts[:, None])
  own = numerics.safe_divide(
    totals[:, None, :] - kept, counts[:, None, None] - 1
  )
  unit = normalize(embeddings)
  cosines = jnp.einsum("jid,kd->jik", unit, normalize(centroids))
  own_cosines = jnp.sum(unit * normalize(own), axis=-1)  # [speakers, utts]
  is_own = jnp.eye(speakers, dtype=bool)[:, None, :]  # [speakers, 1, speakers]
  w, b = numerics.like(w, dtype), numerics.like(b, dtype)
  similarities = w * jnp.where(is_own, own_cosines[..., None], cosines) + b
  positive = w * own_cosines + b
  others = (counts > 0)[None, None, :] & ~is_own  # candidate speakers k != j
  valid = keep & (counts[:, None] >= 2) & jnp.any(others, axis=-1)
  if method == "softmax":
    logits = jnp.where(others | is_own, similarities, jnp.finfo(dtype).min)
    values = jax.nn.logsumexp(logits, axis=-1) - positive
  else:
    values = (
      1
      - jax.nn.sigmoid(positive)
      + masked_max(
        jax.nn.sigmoid(similarities),
        jnp.broadcast_to(others, similarities.shape),
      )
    )
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=valid, name=name
  )


def _cosines_rule(args, arg):
  x = jnp.asarray(args[arg])
  return jnp.all((x >= -1) & (x <= 1)), "must lie in [-1, 1]"


def _margin_inputs(name, cosines, labels, scale, margin, where):
  """Checks the inputs of ArcFace and CosFace; returns
  ``(cosines, labels, margin, element_mask, example_mask)``."""
  cosines = checks.as_float(name, "cosines", cosines)
  labels = checks.as_labels(name, "labels", labels)
  _vectors(name, "cosines", cosines)
  checks.labels_for(name, labels, cosines, cosines.ndim - 1, "cosines")
  checks.positive(name, "scale", scale)
  checks.nonnegative(name, "margin", margin)
  elements, examples = _feature_where(name, where, cosines.shape)
  return (
    cosines,
    labels,
    numerics.like(margin, cosines.dtype),
    elements,
    examples,
  )


def _margin_cross_entropy(cosines, labels, target, scale, elements):
  """Cross-entropy of ``scale · cosines`` with the label's cosine replaced by
  ``target(cosine)``: the shared body of ArcFace and CosFace."""
  is_label = jax.nn.one_hot(labels, cosines.shape[-1], dtype=bool)
  label_cosines = jnp.take_along_axis(cosines, labels[..., None], axis=-1)
  logits = jnp.where(is_label, target(label_cosines), cosines)
  logits = numerics.like(scale, cosines.dtype) * logits
  return masked_cross_entropy(logits, labels, elements)


_CLASS_RULES = {
  "cosines": _cosines_rule,
  "labels": value_checks.class_index("cosines", axis_arg=None),
}


@value_checks.value_rules(**_CLASS_RULES)
def arcface_loss(
  cosines,
  labels,
  *,
  scale=64.0,
  margin=0.5,
  easy_margin=False,
  where=None,
  weights=None,
  reduction="none",
):
  r"""ArcFace: softmax cross-entropy with an additive angular margin.

  .. math::
    \ell = -\log \frac{e^{s\, \phi(\cos\theta_y)}}
                      {e^{s\, \phi(\cos\theta_y)}
                       + \sum_{c \ne y} e^{s \cos\theta_c}},
    \qquad
    \phi = \begin{cases} \cos(\theta + m) & \theta + m \le \pi \\
                         \cos\theta - m \sin m & \text{otherwise}
           \end{cases}

  ``cos(θ + m)`` is computed as ``cos θ cos m − sin θ sin m`` with
  ``sin θ = sqrt(1 − cos²θ)`` (a safe square root), so cosines of exactly ±1
  give finite gradients. The fallback keeps the target logit decreasing in
  ``θ`` where ``θ + m`` passes ``π``: insightface's ``th = cos(π − m)``,
  ``mm = sin(π − m)·m`` (like insightface's, it jumps at ``θ = π − m``:
  from ``−1`` to ``−cos m − m sin m``). With ``easy_margin`` the margin
  applies only where ``cos θ > 0`` and ``cos θ`` is used elsewhere.

  Args:
    cosines: ``[..., num_classes]`` cosines between embeddings and class
      centres, in [−1, 1].
    labels: ``[...]`` integer class labels.
    scale: the logit scale ``s > 0``.
    margin: the angular margin ``m`` in radians.
    easy_margin: the easy-margin variant.
    where: boolean mask of the cosines' shape (drops classes) or of the
      labels' shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches insightface's ``ArcFace`` margin (and the common PyTorch
  ``ArcMarginProduct``) followed by ``cross_entropy``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.arcface_loss(jnp.array([[1.0, 0.0], [-1.0, 0.0]]),
  ...                      jnp.array([0, 0]), scale=4.0)
  Array([0.02944913, 4.9658475 ], dtype=float32)

  References:
    Deng, Guo, Xue and Zafeiriou, `ArcFace: Additive Angular Margin Loss for
    Deep Face Recognition <https://arxiv.org/abs/1801.07698>`_, 2019.
  """
  name = "arcface_loss"
  cosines, labels, margin, elements, examples = _margin_inputs(
    name, cosines, labels, scale, margin, where
  )
  if is_static(margin):
    cos_m, sin_m = math.cos(margin), math.sin(margin)
  else:
    cos_m, sin_m = jnp.cos(margin), jnp.sin(margin)

  def target(c):
    phi = c * cos_m - numerics.safe_sqrt(1 - jnp.square(c)) * sin_m
    if easy_margin:
      return jnp.where(c > 0, phi, c)
    # θ + m > π  ⇔  cos θ < cos(π − m) = −cos m.
    return jnp.where(c > -cos_m, phi, c - margin * sin_m)

  values = _margin_cross_entropy(cosines, labels, target, scale, elements)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


@value_checks.value_rules(**_CLASS_RULES)
def cosface_loss(
  cosines,
  labels,
  *,
  scale=64.0,
  margin=0.35,
  where=None,
  weights=None,
  reduction="none",
):
  r"""CosFace (large margin cosine loss): an additive margin on the cosine.

  .. math::
    \ell = -\log \frac{e^{s (\cos\theta_y - m)}}
                      {e^{s (\cos\theta_y - m)}
                       + \sum_{c \ne y} e^{s \cos\theta_c}}

  Args:
    cosines: ``[..., num_classes]`` cosines between embeddings and class
      centres, in [−1, 1].
    labels: ``[...]`` integer class labels.
    scale: the logit scale ``s > 0``.
    margin: the cosine margin ``m``.
    where: boolean mask of the cosines' shape (drops classes) or of the
      labels' shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches insightface's ``CosFace`` margin followed by ``cross_entropy``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.cosface_loss(jnp.array([[1.0, 0.0]]), jnp.array([0]), scale=4.0)
  Array([0.0716447], dtype=float32)

  References:
    Wang, Wang, Zhou, Ji, Gong, Zhou, Li and Liu, `CosFace: Large Margin
    Cosine Loss for Deep Face Recognition
    <https://arxiv.org/abs/1801.09414>`_, 2018.
  """
  name = "cosface_loss"
  cosines, labels, margin, elements, examples = _margin_inputs(
    name, cosines, labels, scale, margin, where
  )
  values = _margin_cross_entropy(
    cosines, labels, lambda c: c - margin, scale, elements
  )
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


def alignment_loss(
  x, y, *, alpha=2, where=None, weights=None, reduction="none"
):
  r"""Alignment of positive pairs: the ``α``-th power of their distance.

  .. math:: \ell = \|x - y\|_2^\alpha

  Args:
    x: ``[..., dim]`` floating embeddings (the paper normalises them).
    y: ``[..., dim]`` embeddings of the positives, same shape.
    alpha: the exponent ``α > 0``.
    where: boolean mask of the inputs' shape (drops features) or of the
      per-example shape (drops pairs).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``
      (the paper's loss is ``"mean"``).

  Returns:
    ``[...]`` per-pair loss, or a scalar for ``"sum"``/``"mean"``.

  With ``"mean"``, matches the paper's ``align_loss``:
  ``(x - y).norm(p=2, dim=1).pow(alpha).mean()``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.alignment_loss(jnp.array([[0.6, 0.8]]), jnp.array([[0.0, 1.0]]))
  Array([0.4], dtype=float32)

  References:
    Wang and Isola, `Understanding Contrastive Representation Learning through
    Alignment and Uniformity on the Hypersphere
    <https://arxiv.org/abs/2005.10242>`_, 2020.
  """
  name = "alignment_loss"
  x, y = checks.same_shape_floats(name, x=x, y=y)
  _vectors(name, "x", x)
  checks.positive(name, "alpha", alpha)
  elements, examples = _feature_where(name, where, x.shape)
  squared = _squared_distance(x, y, elements)
  values = _safe_power(squared, numerics.like(alpha, x.dtype) / 2)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


__all__ = _metric_mining.__all__ + [
  "alignment_loss",
  "angular_loss",
  "arcface_loss",
  "contrastive_loss",
  "cosface_loss",
  "ge2e_loss",
  "proxy_nca_loss",
  "triplet_margin_loss",
]
