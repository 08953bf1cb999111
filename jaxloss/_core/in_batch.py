"""In-batch contrastive maths shared by one-device and sharded losses.

:mod:`jaxloss.contrastive` and :mod:`jaxloss.distributed` compute the same
per-example values; they differ only in where the columns of the similarity
matrix come from. Each ``*_values`` function below takes this device's rows
and columns (the whole batch on one device, the local slice of the global
batch inside ``shard_map``) and a ``stats`` function with the signature

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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxloss._core import checks, numerics, online_softmax

_TORCH_NORMALIZE_EPS = 1e-12
SIMILARITIES = ("cosine", "dot")  # the `similarity` option of in-batch losses

StatsFn = Callable[..., online_softmax.Stats]


def local_stats(chunk_size: int | None) -> StatsFn:
  """The ``stats`` function of one device: dense, or chunked."""
  return functools.partial(online_softmax.stats, chunk_size=chunk_size)


# --------------------------------------------------------------------------- #
# inputs


def example_mask(name: str, where, shape) -> jax.Array:
  """The per-example mask (all ``True`` without ``where``)."""
  if where is None:
    return jnp.ones(shape, bool)
  return checks.broadcast_mask(name, "where", where, shape, same_rank=True)


def embedding_pair(name: str, first: str, second: str, x, y):
  """Two ``[batch, dim]`` float arrays of one shape and dtype."""
  x, y = checks.same_shape_floats(name, **{first: x, second: y})
  checks.rank(name, first, x, 2)
  return x, y


def infonce_inputs(name: str, anchors, positives, negatives):
  """InfoNCE's arrays: ``[batch, dim]`` anchors and positives of one float
  dtype, and optional ``[batch, k, dim]`` per-anchor or ``[m, dim]`` shared
  negatives of that dtype."""
  arrays = dict(anchors=anchors, positives=positives)
  if negatives is not None:
    arrays["negatives"] = negatives
  converted = checks.floats(name, **arrays)
  anchors, positives = converted[:2]
  checks.same_shape(name, anchors=anchors, positives=positives)
  checks.rank(name, "anchors", anchors, 2)
  if negatives is None:
    return anchors, positives, None
  negatives = converted[2]
  checks.rank(name, "negatives", negatives, {2, 3})
  batch, dim = anchors.shape
  if negatives.ndim == 3:
    checks.shape(
      name,
      "negatives",
      negatives,
      (batch, None, dim),
      "[batch, k, dim] per anchor",
    )
  else:
    checks.shape(name, "negatives", negatives, (None, dim), "[m, dim] shared")
  return anchors, positives, negatives


def retrieval_inputs(name, anchors, positives, negatives):
  """Checked ``[batch, dim]`` anchors and positives, and negatives as
  ``[batch, k, dim]`` (or ``None``), all of one float dtype."""
  if negatives is None:
    anchors, positives = checks.floats(
      name, anchors=anchors, positives=positives
    )
  else:
    anchors, positives, negatives = checks.floats(
      name, anchors=anchors, positives=positives, negatives=negatives
    )
  checks.rank(name, "anchors", anchors, 2)
  checks.same_shape(name, anchors=anchors, positives=positives)
  if negatives is None:
    return anchors, positives, None
  batch, dim = anchors.shape
  checks.rank(name, "negatives", negatives, {2, 3})
  expected = (batch, dim) if negatives.ndim == 2 else (batch, None, dim)
  checks.shape(
    name, "negatives", negatives, expected, "[batch, dim] or [batch, k, dim]"
  )
  return anchors, positives, negatives.reshape(batch, -1, dim)


def torch_unit(x: jax.Array) -> jax.Array:
  """``x / max(‖x‖, 1e-12)`` along the last axis (torch's ``normalize``, as
  sentence-transformers' ``cos_sim``); the zero vector stays 0."""
  norm = numerics.safe_norm(x, axis=-1, keepdims=True)
  return x / jnp.maximum(norm, _TORCH_NORMALIZE_EPS)


# --------------------------------------------------------------------------- #
# chunk functions (see online_softmax): one column chunk of the logits


def unit(x: jax.Array) -> jax.Array:
  """L2-normalised rows; a zero vector stays zero, with a finite gradient."""
  return numerics.safe_divide(x, numerics.safe_norm(x, axis=-1, keepdims=True))


def similarities(rows, columns) -> online_softmax.Chunk:
  """One column chunk of ``scale · x yᵀ (+ bias)``, masked by row and column."""
  logits = jnp.matmul(rows["x"], columns["x"].T) * rows["scale"]
  if "bias" in rows:
    logits = logits + rows["bias"]
  return online_softmax.Chunk(
    logits, rows["keep"][:, None] & columns["keep"][None, :]
  )


def _same(rows, columns, key: str) -> jax.Array:
  return rows[key][:, None] == columns[key][None, :]


def sigmoid_pairs(rows, columns) -> online_softmax.Chunk:
  """SigLIP's terms ``−log σ(z · logits)``, ``z = +1`` on the diagonal."""
  chunk = similarities(rows, columns)
  diagonal = _same(rows, columns, "index")
  nll = jax.nn.softplus(jnp.where(diagonal, -chunk.logits, chunk.logits))
  return chunk._replace(terms=jnp.where(chunk.mask, nll, 0))


def supervised_pairs(rows, columns) -> online_softmax.Chunk:
  """SupCon: the anchor is no candidate; the positives share its label.

  Terms: the sum of the positives' logits and their count."""
  chunk = similarities(rows, columns)
  mask = chunk.mask & ~_same(rows, columns, "index")
  positive = mask & _same(rows, columns, "label")
  return online_softmax.Chunk(
    chunk.logits,
    mask,
    (jnp.where(positive, chunk.logits, 0), positive.astype(chunk.logits.dtype)),
  )


# --------------------------------------------------------------------------- #
# per-example values of each loss


def infonce_values(
  anchors,
  positives,
  negatives,
  temperature,
  keep,
  *,
  similarity: str,
  stats: StatsFn,
) -> jax.Array:
  """``[batch]`` InfoNCE values; shared ``[m, dim]`` negatives are extra
  columns (never masked), per-anchor ``[batch, k, dim]`` ones are dense."""
  if similarity == "cosine":
    anchors, positives = unit(anchors), unit(positives)
    negatives = None if negatives is None else unit(negatives)
  inverse = 1 / temperature.astype(anchors.dtype)
  columns = {"x": positives, "keep": keep}
  if negatives is not None and negatives.ndim == 2:  # shared: more columns.
    columns = {
      "x": jnp.concatenate([positives, negatives]),
      "keep": jnp.concatenate([keep, jnp.ones(negatives.shape[:1], bool)]),
    }
  rows = {"x": anchors, "scale": inverse, "keep": keep}
  lse = stats(similarities, rows, columns).row_lse
  if negatives is not None and negatives.ndim == 3:  # per anchor: dense.
    own = jnp.einsum("bd,bkd->bk", anchors, negatives) * inverse
    lse = jnp.logaddexp(lse, jax.nn.logsumexp(own, axis=1))
  return lse - jnp.sum(anchors * positives, axis=1) * inverse


def clip_values(
  images, texts, temperature, keep, *, normalize: bool, stats: StatsFn
) -> jax.Array:
  """``[batch]`` CLIP values: the mean of each pair's two cross-entropies."""
  if normalize:
    images, texts = unit(images), unit(texts)
  inverse = 1 / temperature.astype(images.dtype)
  result = stats(
    similarities,
    {"x": images, "scale": inverse, "keep": keep},
    {"x": texts, "keep": keep},
    col_lse=True,
  )
  diagonal = jnp.sum(images * texts, axis=1) * inverse
  return (result.row_lse + result.col_lse) / 2 - diagonal


def siglip_values(
  images, texts, scale, bias, keep, *, normalize: bool, stats: StatsFn, start=0
) -> jax.Array:
  """``[batch]`` SigLIP values: each image's row of pair terms, summed."""
  if normalize:
    images, texts = unit(images), unit(texts)
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
  embeddings,
  labels,
  temperature,
  base_temperature,
  keep,
  *,
  stats: StatsFn,
  start=0,
):
  """SupCon values ``[batch]`` or ``[batch, views]``, and the mask to reduce
  them with (``keep`` without the anchors that have no positive)."""
  dtype = embeddings.dtype
  shape = embeddings.shape[:-1]  # [batch] or [batch, views]: one anchor each.
  temperature = temperature.astype(dtype)
  labels = jnp.broadcast_to(
    labels.reshape(labels.shape + (1,) * (len(shape) - 1)), shape
  )
  views_per_example = math.prod(shape[1:])
  views = {
    "x": embeddings.reshape(keep.size, -1),
    "keep": keep.reshape(-1),
    "label": labels.reshape(-1),
    "index": start * views_per_example + jnp.arange(keep.size),
  }
  result = stats(supervised_pairs, {**views, "scale": 1 / temperature}, views)
  positive_sum, count = result.row_sums
  factor = temperature / base_temperature.astype(dtype)
  values = factor * (result.row_lse - numerics.safe_divide(positive_sum, count))
  return values.reshape(shape), keep & (count > 0).reshape(shape)
