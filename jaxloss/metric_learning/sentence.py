"""Sentence-embedding losses of sentence-transformers: CoSENT, AnglE, Margin
MSE, and the Matryoshka wrapper that trains nested prefixes of the
embedding."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, in_batch, numerics
from jaxloss._core import loss as loss_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, validate

PairSimilarity = Literal["cosine", "dot"]


def _pair_inputs(
  embeddings_a: ArrayLike, embeddings_b: ArrayLike, labels: ArrayLike
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``[batch, dim]`` floats of one dtype and ``[batch]`` numeric labels."""
  a, b = checks.floats(embeddings_a=embeddings_a, embeddings_b=embeddings_b)
  checks.rank("embeddings_a", a, 2)
  checks.same_shape(embeddings_a=a, embeddings_b=b)
  labels = jnp.asarray(labels)
  if labels.dtype == jnp.bool_:
    labels = labels.astype(jnp.int32)
  if not jnp.issubdtype(labels.dtype, jnp.number):
    raise checks.fail(
      f"argument `labels` must be numeric, got {labels.dtype}.", TypeError
    )
  checks.shape("labels", labels, a.shape[:1], "one score per pair")
  return a, b, labels


def _ranked_pairs(
  scores: jax.Array, labels: jax.Array, keep: jax.Array
) -> jax.Array:
  """``log(1 + Σ_{y_i > y_j} exp(z_j − z_i))`` over the kept pairs; 0 when
  no kept pair has different labels. Dense ``[batch, batch]``."""
  higher = labels[:, None] > labels[None, :]  # i ranked above j
  pairs = higher & keep[:, None] & keep[None, :]
  differences = scores[None, :] - scores[:, None]  # z_j − z_i
  lse = numerics.masked_logsumexp(differences.reshape(-1), pairs.reshape(-1))
  return jnp.where(jnp.any(pairs), jnp.logaddexp(0, lse), 0)


def _angle_similarity(a: jax.Array, b: jax.Array) -> jax.Array:
  """``|cos(a, b) + sin(a, b)|``: dims ``i`` and ``i + ⌈D/2⌉`` form the real
  and imaginary parts of a complex vector (an odd ``D`` is padded with 0)."""
  a, b = numerics.l2_normalize(a), numerics.l2_normalize(b)
  cosines = jnp.sum(a * b, axis=-1)
  if a.shape[-1] % 2:
    pad = ((0, 0), (0, 1))
    a, b = jnp.pad(a, pad), jnp.pad(b, pad)
  half = a.shape[-1] // 2
  real_a, imag_a = a[:, :half], a[:, half:]
  real_b, imag_b = b[:, :half], b[:, half:]
  sines = jnp.sum(imag_a * real_b - real_a * imag_b, axis=-1)
  return jnp.abs(cosines + sines)


@loss
def cosent_loss(
  embeddings_a: ArrayLike,
  embeddings_b: ArrayLike,
  labels: ArrayLike,
  *,
  scale: ArrayLike = 20.0,
  similarity: PairSimilarity = "cosine",
  where: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""CoSENT: every pair must score above every pair with a lower label.

  .. math::
    \mathcal{L} = \log\Big(1 + \sum_{(i, j):\ y_i > y_j}
      e^{\lambda (s_j - s_i)}\Big),
    \qquad s_i = \mathrm{sim}(a_i, b_i)

  The sum runs over the ordered pairs of examples of the batch whose labels
  differ (ties contribute nothing), so the value is a batch-level scalar for
  every ``reduction``; it holds a dense ``[batch, batch]`` matrix
  (sentence-transformers sorts the labels instead; the values agree).

  Args:
    embeddings_a: ``[batch, dim]`` floating embeddings of the first texts.
    embeddings_b: ``[batch, dim]`` embeddings of the second texts.
    labels: ``[batch]`` similarity scores (float, int or bool); only their
      order matters. Not differentiated.
    scale: ``λ``, the inverse temperature (may be traced).
    similarity: ``"cosine"`` (``x / max(‖x‖, 1e-12)``, torch's
      ``normalize``) or ``"dot"``.
    where: optional ``[batch]`` mask; a masked pair takes part in no
      comparison (``where`` equals slicing).
    reduction: checked for the common signature; the value is already a
      scalar, the same for ``"none"``, ``"sum"`` and ``"mean"``.

  Returns:
    A scalar; 0 when no two kept pairs have different labels.

  Matches sentence-transformers' ``CoSENTLoss`` (its
  ``compute_loss_from_embeddings``, with ``pairwise_cos_sim`` or
  ``pairwise_dot_score``).

  >>> import jax.numpy as jnp, jaxloss
  >>> a = jnp.array([[1.0, 0.0], [1.0, 0.0]])
  >>> b = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jaxloss.cosent_loss(a, b, jnp.array([1.0, 0.0]), scale=1.0)  # log(1+e⁻¹)
  Array(0.3132617, dtype=float32)

  References:
    Huang, Peng, Zou, Liu, Li, Liu, Wu, Su and Yu, `CoSENT: Consistent
    Sentence Embedding via Similarity Ranking
    <https://doi.org/10.1109/TASLP.2024.3402087>`_, 2024.
  """
  a, b, labels = _pair_inputs(embeddings_a, embeddings_b, labels)
  checks.option("similarity", similarity, ("cosine", "dot"))
  if similarity == "cosine":
    a, b = numerics.l2_normalize(a), numerics.l2_normalize(b)
  scores = numerics.like(scale, a.dtype) * jnp.sum(a * b, axis=-1)
  keep = in_batch.example_mask(where, a.shape[:1])
  return reduce(_ranked_pairs(scores, labels, keep), reduction)


@loss
def angle_loss(
  embeddings_a: ArrayLike,
  embeddings_b: ArrayLike,
  labels: ArrayLike,
  *,
  scale: ArrayLike = 20.0,
  where: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""AnglE: CoSENT on the absolute angle-difference score of complex vectors.

  .. math::
    \mathcal{L} = \log\Big(1 + \sum_{(i, j):\ y_i > y_j}
      e^{\lambda (s_j - s_i)}\Big),
    \qquad s_i = \Big| \sum_k \mathrm{Re}\, r_{ik} + \mathrm{Im}\, r_{ik}
      \Big|,
    \quad r_i = \frac{z_{a_i}}{z_{b_i}} \frac{\|b_i\|}{\|a_i\|}

  Each embedding is read as a complex vector ``z = x[:h] + i·x[h:]`` (``h =
  ⌈D/2⌉``, an odd ``D`` padded with a zero); after L2 normalisation the score
  is ``|cos(a, b) + Σ (a_im·b_re − a_re·b_im)|``, the order of the authors'
  code (the published equation 3 writes the subtraction the other way; the
  score is not a geometric angle). A batch-level scalar, as
  :func:`cosent_loss`.

  Args:
    embeddings_a: ``[batch, dim]`` floating embeddings of the first texts.
    embeddings_b: ``[batch, dim]`` embeddings of the second texts.
    labels: ``[batch]`` similarity scores; only their order matters.
    scale: ``λ``, the inverse temperature (may be traced).
    where: optional ``[batch]`` mask; a masked pair takes part in no
      comparison.
    reduction: checked; the value is a scalar for every reduction.

  Returns:
    A scalar; 0 when no two kept pairs have different labels.

  Matches sentence-transformers' ``AnglELoss`` on pairs (its
  ``pairwise_angle_sim``). Its anchor/positive/negatives form is this loss
  on the concatenated pairs ``(anchor, positive)`` with the labels and
  ``(anchor, negative_k)`` with ``1 − labels``.

  >>> import jax.numpy as jnp, jaxloss
  >>> a = jnp.array([[1.0, 0.0], [1.0, 0.0]])
  >>> b = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jaxloss.angle_loss(a, b, jnp.array([1.0, 0.0]), scale=1.0)
  Array(0.6931472, dtype=float32)

  References:
    Li and Li, `AoE: Angle-optimized Embeddings for Semantic Textual
    Similarity <https://aclanthology.org/2024.acl-long.101/>`_, 2024.
  """
  a, b, labels = _pair_inputs(embeddings_a, embeddings_b, labels)
  scores = numerics.like(scale, a.dtype) * _angle_similarity(a, b)
  keep = in_batch.example_mask(where, a.shape[:1])
  return reduce(_ranked_pairs(scores, labels, keep), reduction)


@loss
def margin_mse_loss(
  queries: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike,
  margins: ArrayLike,
  *,
  similarity: PairSimilarity = "dot",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Margin MSE: distil a teacher's score margins between passages.

  .. math::
    \ell_{ik} = \big( (s(q_i, p_i) - s(q_i, n_{ik})) - m_{ik} \big)^2

  Args:
    queries: ``[batch, dim]`` floating query embeddings.
    positives: ``[batch, dim]`` positive passage embeddings.
    negatives: ``[batch, dim]`` (one per query) or ``[batch, k, dim]``
      negative passage embeddings.
    margins: the teacher's margins ``s_T(q, p) − s_T(q, n)``, ``[batch]``
      or ``[batch, k]`` (the negatives' leading shape). Not differentiated.
    similarity: ``"dot"`` (the default, as the reference) or ``"cosine"``.
    where, weights, reduction: see :func:`jaxloss.reduce`; a mask or weights
      of rank 1 with ``[batch, k]`` negatives must be ``[batch, 1]``.

  Returns:
    ``[batch]`` or ``[batch, k]`` squared errors, or a scalar; ``"mean"``
    is the reference's value.

  Supported input range: the value is quartic in the embeddings (squared
  dot products), so in float32 it overflows from embeddings of about 1e9
  (``"dot"``); beyond that the value is inf and gradients may be NaN.

  Matches sentence-transformers' ``MarginMSELoss`` (``nn.MSELoss`` of the
  margins). Teacher scores ``[batch, 1 + k]`` (positive first) become
  margins as ``scores[:, :1] − scores[:, 1:]``.

  >>> import jax.numpy as jnp, jaxloss
  >>> q, p = jnp.array([[1.0, 0.0]]), jnp.array([[2.0, 0.0]])
  >>> n = jnp.zeros((1, 2))
  >>> jaxloss.margin_mse_loss(q, p, n, jnp.array([1.5]))
  Array([0.25], dtype=float32)

  References:
    Hofstätter, Althammer, Schröder, Sertkan and Hanbury, `Improving
    Efficient Neural Ranking Models with Cross-Architecture Knowledge
    Distillation <https://arxiv.org/abs/2010.02666>`_, 2020.
  """
  queries, positives, negatives = checks.floats(
    queries=queries, positives=positives, negatives=negatives
  )
  checks.rank("queries", queries, 2)
  checks.same_shape(queries=queries, positives=positives)
  checks.rank("negatives", negatives, (2, 3))
  checks.option("similarity", similarity, ("cosine", "dot"))
  batch, dim = queries.shape
  if negatives.ndim == 2:
    checks.shape("negatives", negatives, (batch, dim), "[batch, dim]")
  else:
    checks.shape("negatives", negatives, (batch, None, dim), "[batch, k, dim]")
  margins = checks.as_targets("margins", margins, queries)
  checks.shape(
    "margins", margins, negatives.shape[:-1], "the negatives' leading shape"
  )
  if similarity == "cosine":
    queries = numerics.l2_normalize(queries)
    positives = numerics.l2_normalize(positives)
    negatives = numerics.l2_normalize(negatives)
  positive = jnp.sum(queries * positives, axis=-1)
  if negatives.ndim == 2:
    negative = jnp.sum(queries * negatives, axis=-1)
  else:
    negative = jnp.einsum("bd,bkd->bk", queries, negatives)
    positive = positive[:, None]
  errors = (positive - negative) - jax.lax.stop_gradient(margins)
  return reduce(jnp.square(errors), reduction, weights=weights, where=where)


def matryoshka(
  loss_fn: Callable[..., jax.Array],
  dims: Sequence[int],
  *,
  weights: Sequence[float] | None = None,
  argnums: int | Sequence[int] | None = None,
) -> Callable[..., jax.Array]:
  r"""A loss over nested prefixes of the embedding (Matryoshka).

  .. math::
    \mathcal{L}(x_1, \dots) = \sum_k w_k\, \mathcal{L}_0\big(
      \hat x_1^{(d_k)}, \hat x_2^{(d_k)}, \dots\big),
    \qquad \hat x^{(d)} = \frac{x_{[..., :d]}}{\max(\|x_{[..., :d]}\|,
      10^{-12})}

  The returned function takes the arguments of ``loss_fn``; for each
  ``d_k`` it replaces the *embedding arguments* by their first ``d_k``
  features, L2-normalised (every prefix, the full width too), calls
  ``loss_fn`` with everything else unchanged and sums the results weighted
  by ``w_k``. The embedding arguments are the positional arguments
  ``argnums``; by default the leading positional arguments that are
  floating arrays of rank ≥ 2 with the first argument's last-axis size
  (stopping at the first that is not: labels, margins, centres of another
  width). So ``multiple_negatives_ranking_loss(anchors, positives,
  negatives)``, ``cosent_loss(a, b, labels)`` and ``margin_mse_loss(q, p, n,
  margins)`` shrink their embeddings and keep the rest. Pass ``argnums``
  where a later argument has the embedding's width by coincidence.

  Args:
    loss_fn: a jaxloss loss (or any function) whose leading positional
      arguments are ``[..., dim]`` embeddings.
    dims: the prefix sizes ``d_k``, positive ints, at most ``dim`` (checked
      at call time); their order does not matter.
    weights: the ``w_k``, one per dim (default all 1).
    argnums: the positional indices to shrink (default: see above).

  Returns:
    The wrapped loss; its value has ``loss_fn``'s shape (per-example values
    are summed elementwise, so ``reduction`` passes through).

  Matches sentence-transformers' ``MatryoshkaLoss`` (its ``shrink``: slice,
  then ``F.normalize``), on the embeddings; it does not truncate labels
  that look like embeddings (its distillation case) and has no
  ``n_dims_per_step`` sampling (call with a subset of ``dims`` instead).

  >>> import jax.numpy as jnp, jaxloss
  >>> loss = jaxloss.matryoshka(jaxloss.cosent_loss, [2, 4], weights=[1, 2])
  >>> a = jnp.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
  >>> loss(a, a[::-1], jnp.array([1.0, 0.0])).shape
  ()

  References:
    Kusupati et al., `Matryoshka Representation Learning
    <https://arxiv.org/abs/2205.13147>`_, 2022.
  """
  name = f"matryoshka({getattr(loss_fn, '__name__', 'loss_fn')})"
  dims = tuple(dims)
  if not dims or any(
    not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in dims
  ):
    raise ValueError(
      f"matryoshka: `dims` must be a non-empty sequence of positive ints, "
      f"got {dims!r}."
    )
  if weights is None:
    weights = (1.0,) * len(dims)
  weights = tuple(weights)
  if len(weights) != len(dims):
    raise ValueError(
      f"matryoshka: `weights` must have one entry per dim ({len(dims)}), "
      f"got {len(weights)}."
    )
  fixed = None if argnums is None else _argnums(argnums)
  try:
    positional = [
      p.name
      for p in inspect.signature(loss_fn).parameters.values()
      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
  except (TypeError, ValueError):  # no signature: name them by position
    positional = []

  def arg_name(i: int) -> str:
    return positional[i] if i < len(positional) else f"#{i}"

  def shrunk(*args: Any, **kwargs: Any) -> jax.Array:
    indices = _embedding_args(args, arg_name) if fixed is None else fixed
    total: jax.Array | None = None
    for dim, weight in zip(dims, weights):
      new_args = list(args)
      for i in indices:
        x = checks.as_float(arg_name(i), args[i])
        if dim > x.shape[-1]:
          raise checks.fail(
            f"`dims` entry {dim} exceeds the embedding size {x.shape[-1]} "
            f"of argument `{arg_name(i)}`."
          )
        new_args[i] = numerics.l2_normalize(x[..., :dim])
      value = weight * loss_fn(*new_args, **kwargs)
      total = value if total is None else total + value
    assert total is not None
    return total

  @functools.wraps(loss_fn)
  def wrapper(*args: Any, **kwargs: Any) -> jax.Array:
    if "reduction" in kwargs:
      loss_lib.named(name, validate, kwargs["reduction"])
    return loss_lib.named(name, shrunk, *args, **kwargs)

  wrapper.__name__ = name
  wrapper.__qualname__ = name
  return wrapper


def _argnums(argnums: int | Sequence[int]) -> tuple[int, ...]:
  indices = (argnums,) if isinstance(argnums, int) else tuple(argnums)
  if not indices or any(
    not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in indices
  ):
    raise ValueError(
      f"matryoshka: `argnums` must be non-negative ints, got {argnums!r}."
    )
  return indices


def _embedding_args(
  args: Sequence[Any], arg_name: Callable[[int], str]
) -> tuple[int, ...]:
  """The leading positional floating arrays of rank >= 2 whose last axis has
  the first one's size."""
  indices: list[int] = []
  width = None
  for i, arg in enumerate(args):
    shape, dtype = jnp.shape(arg), jnp.result_type(arg)
    if len(shape) < 2 or not jnp.issubdtype(dtype, jnp.floating):
      break
    if width is None:
      width = shape[-1]
    elif shape[-1] != width:
      break
    indices.append(i)
  if not indices:
    first = jnp.asarray(args[0]) if args else jnp.zeros(())
    raise checks.fail(
      f"argument `{arg_name(0)}` must be a floating [..., dim] embedding "
      f"array, got dtype {first.dtype} with shape {first.shape}.",
      ValueError if jnp.issubdtype(first.dtype, jnp.floating) else TypeError,
    )
  return tuple(indices)


__all__ = ["angle_loss", "cosent_loss", "margin_mse_loss", "matryoshka"]
