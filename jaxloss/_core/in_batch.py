"""In-batch maths shared by the one-device and the sharded losses.

:mod:`jaxloss.contrastive`, :func:`jaxloss.multiple_negatives_ranking_loss`
and :mod:`jaxloss.distributed` compute the same per-example values; they
differ only in where the columns of the similarity matrix come from. Each
loss has here its checks (``*_inputs``: the arrays and hyper-parameters
checked and converted, the same on one device and sharded) and its maths
(``*_values``). A ``*_values`` function takes this device's rows and columns
(the whole batch on one device, the local slice of the global batch inside
``shard_map``) and a ``stats`` function with the signature

  ``stats(chunk_fn, rows, columns, *, row_lse=True, col_lse=False) -> Stats``

that returns :class:`~jaxloss._core.online_softmax.Stats` of the matrix
between the local rows and **all** columns (and, for ``col_lse``, between all
rows and the local columns):

* one device: :func:`local_stats` (:func:`online_softmax.stats`, dense or
  chunked);
* several devices: :mod:`jaxloss._core.ring` (a ring of ``ppermute`` steps,
  or an ``all_gather``).

``start`` is the global index of the first local example (0 on one device);
losses that must recognise an example's own column (SigLIP's diagonal, the
SupCon anchor) give rows and columns the global ``index`` ``start + i``.

Normalised embeddings are ``x / max(‖x‖, 1e-12)``
(:func:`jaxloss._core.numerics.l2_normalize`, torch's rule), whose norm does
not overflow (embeddings up to float32's largest value).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, online_softmax
from jaxloss._core.chunking import ChunkSize

Similarity = Literal["cosine", "dot"]
SIMILARITIES: tuple[Similarity, ...] = ("cosine", "dot")  # `similarity` option

StatsFn = Callable[..., online_softmax.Stats]


def local_stats(chunk_size: ChunkSize) -> StatsFn:
  """The ``stats`` function of one device: dense, chunked, or ``"auto"``."""
  return functools.partial(online_softmax.stats, chunk_size=chunk_size)


def same_label(labels: jax.Array, others: jax.Array | None = None) -> jax.Array:
  """``[n, m]`` pair matrix, ``True`` where ``labels[i] == others[j]``
  (``others`` defaults to ``labels``: the pairs of one batch)."""
  others = labels if others is None else others
  return labels[:, None] == others[None, :]


# --------------------------------------------------------------------------- #
# inputs: checked arrays and hyper-parameters of each loss


def example_mask(where: ArrayLike | None, shape: Sequence[int]) -> jax.Array:
  """The per-example mask (all ``True`` without ``where``)."""
  if where is None:
    return jnp.ones(tuple(shape), bool)
  return checks.broadcast_mask("where", where, shape, same_rank=True)


def _pair(
  first: str, x: ArrayLike, second: str, y: ArrayLike
) -> tuple[jax.Array, jax.Array]:
  """Two ``[batch, dim]`` float arrays of one shape and dtype."""
  x, y = checks.same_shape_floats(**{first: x, second: y})
  checks.rank(first, x, 2)
  return x, y


def clip_inputs(
  image_embeddings: ArrayLike, text_embeddings: ArrayLike, temperature: Any
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """CLIP's checked ``(images, texts, temperature)``."""
  images, texts = _pair(
    "image_embeddings", image_embeddings, "text_embeddings", text_embeddings
  )
  checks.positive("temperature", temperature)
  return images, texts, checks.scalar("temperature", temperature)


def siglip_inputs(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  logit_scale: Any,
  logit_bias: Any,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """SigLIP's checked ``(images, texts, scale, bias)``."""
  images, texts = _pair(
    "image_embeddings", image_embeddings, "text_embeddings", text_embeddings
  )
  checks.positive("logit_scale", logit_scale)
  return (
    images,
    texts,
    checks.scalar("logit_scale", logit_scale),
    checks.scalar("logit_bias", logit_bias),
  )


def infonce_inputs(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike | None,
  temperature: Any,
  similarity: str,
) -> tuple[jax.Array, jax.Array, jax.Array | None, jax.Array]:
  """InfoNCE's checked ``(anchors, positives, negatives, temperature)``:
  ``[batch, dim]`` anchors and positives of one float dtype, and optional
  ``[batch, k, dim]`` per-anchor or ``[m, dim]`` shared negatives of that
  dtype."""
  arrays = dict(anchors=anchors, positives=positives)
  if negatives is not None:
    arrays["negatives"] = negatives
  converted = checks.floats(**arrays)
  anchors, positives = converted[:2]
  checks.same_shape(anchors=anchors, positives=positives)
  checks.rank("anchors", anchors, 2)
  if negatives is not None:
    negatives = converted[2]
    checks.rank("negatives", negatives, (2, 3))
    batch, dim = anchors.shape
    if negatives.ndim == 3:
      checks.shape(
        "negatives", negatives, (batch, None, dim), "[batch, k, dim] per anchor"
      )
    else:
      checks.shape("negatives", negatives, (None, dim), "[m, dim] shared")
  checks.option("similarity", similarity, SIMILARITIES)
  checks.positive("temperature", temperature)
  temperature = checks.scalar("temperature", temperature)
  return anchors, positives, negatives, temperature


def retrieval_inputs(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike | None,
  scale: Any,
  similarity: str,
) -> tuple[jax.Array, jax.Array, jax.Array | None, jax.Array]:
  """Multiple-negatives ranking's checked ``(anchors, positives, negatives,
  scale)``: ``[batch, dim]`` anchors and positives, and negatives as
  ``[batch, k, dim]`` (or ``None``), all of one float dtype."""
  checks.option("similarity", similarity, SIMILARITIES)
  checks.positive("scale", scale)
  arrays = dict(anchors=anchors, positives=positives)
  if negatives is not None:
    arrays["negatives"] = negatives
  converted = checks.floats(**arrays)
  anchors, positives = converted[:2]
  checks.rank("anchors", anchors, 2)
  checks.same_shape(anchors=anchors, positives=positives)
  batch, dim = anchors.shape
  if negatives is not None:
    negatives = converted[2]
    checks.rank("negatives", negatives, (2, 3))
    expected = (batch, dim) if negatives.ndim == 2 else (batch, None, dim)
    checks.shape(
      "negatives", negatives, expected, "[batch, dim] or [batch, k, dim]"
    )
    if negatives.ndim == 2:  # one hard negative per anchor.
      negatives = negatives[:, None, :]
  return anchors, positives, negatives, checks.scalar("scale", scale)


def ntxent_inputs(
  embeddings: ArrayLike, labels: ArrayLike, temperature: ArrayLike
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """NT-Xent's checked ``[batch, dim]`` embeddings, ``[batch]`` labels and
  temperature."""
  embeddings = checks.as_float("embeddings", embeddings)
  labels = checks.as_labels("labels", labels)
  checks.rank("embeddings", embeddings, 2)
  checks.shape(
    "labels", labels, embeddings.shape[:1], "one label per embedding"
  )
  checks.positive("temperature", temperature)
  return embeddings, labels, checks.scalar("temperature", temperature)


def supervised_inputs(
  embeddings: ArrayLike,
  labels: ArrayLike | None,
  temperature: Any,
  base_temperature: Any,
) -> tuple[jax.Array, jax.Array | None, jax.Array, jax.Array]:
  """SupCon's checked ``(embeddings, labels, temperature,
  base_temperature)``; ``labels`` stays ``None`` when not given."""
  embeddings = checks.as_float("embeddings", embeddings)
  checks.rank("embeddings", embeddings, (2, 3))
  if labels is not None:
    labels = checks.as_labels("labels", labels)
    checks.shape(
      "labels", labels, embeddings.shape[:1], "one label per example"
    )
  checks.positive("temperature", temperature)
  checks.positive("base_temperature", base_temperature)
  return (
    embeddings,
    labels,
    checks.scalar("temperature", temperature),
    checks.scalar("base_temperature", base_temperature),
  )


# --------------------------------------------------------------------------- #
# chunk functions (see online_softmax): one column chunk of the logits


def _logits(rows, columns) -> tuple[jax.Array, jax.Array]:
  """``(scale · x yᵀ (+ bias), mask)`` of one column chunk; the mask keeps
  the pairs of a kept row and a kept column."""
  logits = jnp.matmul(rows["x"], columns["x"].T) * rows["scale"]
  if "bias" in rows:
    logits = logits + rows["bias"]
  return logits, rows["keep"][:, None] & columns["keep"][None, :]


def similarities(rows, columns) -> online_softmax.Chunk:
  """One column chunk of ``scale · x yᵀ (+ bias)``, masked by row and column."""
  return online_softmax.Chunk(*_logits(rows, columns))


def sigmoid_pairs(rows, columns) -> online_softmax.Chunk:
  """SigLIP's terms ``−log σ(z · logits)``, ``z = +1`` on the diagonal."""
  logits, mask = _logits(rows, columns)
  diagonal = same_label(rows["index"], columns["index"])
  nll = jax.nn.softplus(jnp.where(diagonal, -logits, logits))
  return online_softmax.Chunk(logits, mask, jnp.where(mask, nll, 0))


def supervised_pairs(rows, columns) -> online_softmax.Chunk:
  """SupCon: the anchor is no candidate; the positives share its label.

  Terms: the sum of the positives' logits and their count."""
  logits, mask = _logits(rows, columns)
  mask = mask & ~same_label(rows["index"], columns["index"])
  positive = mask & same_label(rows["label"], columns["label"])
  return online_softmax.Chunk(
    logits,
    mask,
    (jnp.where(positive, logits, 0), positive.astype(logits.dtype)),
  )


def ntxent_negatives(rows, columns) -> online_softmax.Chunk:
  """NT-Xent's first pass: each anchor's negatives (kept, another label).

  Terms: their count."""
  logits, mask = _logits(rows, columns)
  negative = mask & ~same_label(rows["label"], columns["label"])
  return online_softmax.Chunk(logits, negative, negative.astype(logits.dtype))


def ntxent_positives(rows, columns) -> online_softmax.Chunk:
  """NT-Xent's second pass, given each row's negatives' log-sum-exp
  ``rows["lse"]`` (and whether it has any, ``rows["negatives"]``).

  Terms: the sum over the positives (kept, same label, another example) of
  ``softplus(lse − logit)``, and their count."""
  logits, mask = _logits(rows, columns)
  positive = (
    mask
    & same_label(rows["label"], columns["label"])
    & ~same_label(rows["index"], columns["index"])
  )
  pair_loss = jax.nn.softplus(rows["lse"][:, None] - logits)
  counted = positive & rows["negatives"][:, None]
  return online_softmax.Chunk(
    logits,
    positive,
    (jnp.where(counted, pair_loss, 0), positive.astype(logits.dtype)),
  )


# --------------------------------------------------------------------------- #
# per-example values of each loss


def _present(lse: jax.Array | None) -> jax.Array:
  """A log-sum-exp of :class:`~jaxloss._core.online_softmax.Stats` that was
  asked for (``None`` only when it was not)."""
  if lse is None:
    raise ValueError("in_batch: a log-sum-exp that was not computed.")
  return lse


def infonce_values(
  anchors: jax.Array,
  positives: jax.Array,
  negatives: jax.Array | None,
  temperature: jax.Array,
  keep: jax.Array,
  *,
  similarity: str,
  stats: StatsFn,
) -> jax.Array:
  """``[batch]`` InfoNCE values; shared ``[m, dim]`` negatives are extra
  columns (never masked), per-anchor ``[batch, k, dim]`` ones are dense."""
  if similarity == "cosine":
    anchors = numerics.l2_normalize(anchors)
    positives = numerics.l2_normalize(positives)
    negatives = None if negatives is None else numerics.l2_normalize(negatives)
  inverse = 1 / temperature.astype(anchors.dtype)
  columns = {"x": positives, "keep": keep}
  if negatives is not None and negatives.ndim == 2:  # shared: more columns.
    columns = {
      "x": jnp.concatenate([positives, negatives]),
      "keep": jnp.concatenate([keep, jnp.ones(negatives.shape[:1], bool)]),
    }
  rows = {"x": anchors, "scale": inverse, "keep": keep}
  lse = _present(stats(similarities, rows, columns).row_lse)
  if negatives is not None and negatives.ndim == 3:  # per anchor: dense.
    own = jnp.einsum("bd,bkd->bk", anchors, negatives) * inverse
    lse = jnp.logaddexp(lse, jax.nn.logsumexp(own, axis=1))
  return lse - jnp.sum(anchors * positives, axis=1) * inverse


def retrieval_values(
  anchors: jax.Array,
  positives: jax.Array,
  negatives: jax.Array | None,
  scale: jax.Array,
  keep: jax.Array,
  *,
  similarity: str,
  symmetric: bool,
  stats: StatsFn,
) -> jax.Array:
  """``[batch]`` multiple-negatives ranking values: each anchor against all
  positives, then all ``[batch, k, dim]`` hard negatives (a masked example's
  positive and negatives are no candidates); with ``symmetric``, averaged
  with each positive's cross-entropy over all anchors."""
  if similarity == "cosine":
    anchors = numerics.l2_normalize(anchors)
    positives = numerics.l2_normalize(positives)
    negatives = None if negatives is None else numerics.l2_normalize(negatives)
  batch, dim = anchors.shape
  scale = scale.astype(anchors.dtype)
  columns = {"x": positives, "keep": keep}
  if negatives is not None:  # candidates: all positives, then all negatives.
    k = negatives.shape[1]
    columns = {
      "x": jnp.concatenate([positives, negatives.reshape(batch * k, dim)]),
      "keep": jnp.concatenate([keep, jnp.repeat(keep, k)]),
    }
  result = stats(
    similarities,
    {"x": anchors, "scale": scale, "keep": keep},
    columns,
    col_lse=symmetric,
  )
  target = jnp.sum(anchors * positives, axis=1) * scale
  values = _present(result.row_lse) - target
  if symmetric:  # each positive's log-sum-exp over all anchors.
    values = 0.5 * (values + _present(result.col_lse)[:batch] - target)
  return values


def clip_values(
  images: jax.Array,
  texts: jax.Array,
  temperature: jax.Array,
  keep: jax.Array,
  *,
  normalize: bool,
  stats: StatsFn,
) -> jax.Array:
  """``[batch]`` CLIP values: the mean of each pair's two cross-entropies."""
  if normalize:
    images, texts = numerics.l2_normalize(images), numerics.l2_normalize(texts)
  inverse = 1 / temperature.astype(images.dtype)
  result = stats(
    similarities,
    {"x": images, "scale": inverse, "keep": keep},
    {"x": texts, "keep": keep},
    col_lse=True,
  )
  diagonal = jnp.sum(images * texts, axis=1) * inverse
  return (_present(result.row_lse) + _present(result.col_lse)) / 2 - diagonal


def siglip_values(
  images: jax.Array,
  texts: jax.Array,
  scale: jax.Array,
  bias: jax.Array,
  keep: jax.Array,
  *,
  normalize: bool,
  stats: StatsFn,
  start: ArrayLike = 0,
) -> jax.Array:
  """``[batch]`` SigLIP values: each image's row of pair terms, summed."""
  if normalize:
    images, texts = numerics.l2_normalize(images), numerics.l2_normalize(texts)
  index = start + jnp.arange(images.shape[0])
  rows = {
    "x": images,
    "keep": keep,
    "index": index,
    "scale": scale.astype(images.dtype),
    "bias": bias.astype(images.dtype),
  }
  result = stats(
    sigmoid_pairs,
    rows,
    {"x": texts, "keep": keep, "index": index},
    row_lse=False,
  )
  return result.row_sums


def supervised_values(
  embeddings: jax.Array,
  labels: jax.Array | None,
  temperature: jax.Array,
  base_temperature: jax.Array,
  keep: jax.Array,
  *,
  stats: StatsFn,
  start: ArrayLike = 0,
) -> tuple[jax.Array, jax.Array]:
  """SupCon values ``[batch]`` or ``[batch, views]``, and the mask to reduce
  them with (``keep`` without the anchors that have no positive).

  ``labels=None`` makes each example of the (global) batch its own class."""
  dtype = embeddings.dtype
  shape = embeddings.shape[:-1]  # [batch] or [batch, views]: one anchor each.
  example_labels = start + jnp.arange(shape[0]) if labels is None else labels
  temperature = temperature.astype(dtype)
  view_labels = jnp.broadcast_to(
    example_labels.reshape(shape[:1] + (1,) * (len(shape) - 1)), shape
  )
  views_per_example = math.prod(shape[1:])
  views = {
    "x": embeddings.reshape(keep.size, embeddings.shape[-1]),
    "keep": keep.reshape(-1),
    "label": view_labels.reshape(-1),
    "index": start * views_per_example + jnp.arange(keep.size),
  }
  result = stats(supervised_pairs, {**views, "scale": 1 / temperature}, views)
  positive_sum, count = result.row_sums
  factor = temperature / base_temperature.astype(dtype)
  lse = _present(result.row_lse)
  values = factor * (lse - numerics.safe_divide(positive_sum, count))
  return values.reshape(shape), keep & (count > 0).reshape(shape)


def ntxent_values(
  embeddings: jax.Array,
  labels: jax.Array,
  temperature: jax.Array,
  keep: jax.Array,
  *,
  stats: StatsFn,
  start: ArrayLike = 0,
) -> tuple[jax.Array, jax.Array]:
  """NT-Xent (optax's form) per anchor: the mean over its positive pairs of
  ``softplus(lse_negatives − logit)``, and the number of those pairs (the
  weight of the anchor in the mean over pairs). Two passes of ``stats``:
  the negatives' log-sum-exp, then the positive pairs' terms. ``start``
  is the global index of this device's first example."""
  dtype = embeddings.dtype
  # optax's cosine similarity, x / sqrt(max(|x|², eps)).
  unit = numerics.l2_normalize(embeddings, eps=jnp.sqrt(jnp.finfo(dtype).eps))
  views = {
    "x": unit,
    "keep": keep,
    "label": labels,
    "index": start + jnp.arange(keep.shape[0]),
  }
  rows = {**views, "scale": 1 / temperature.astype(dtype)}
  first = stats(ntxent_negatives, rows, views)
  rows = {
    **rows,
    "lse": _present(first.row_lse),
    "negatives": first.row_sums > 0,
  }
  pair_sum, count = stats(ntxent_positives, rows, views, row_lse=False).row_sums
  return numerics.safe_divide(pair_sum, count), count
