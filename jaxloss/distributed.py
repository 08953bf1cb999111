r"""Contrastive losses over a batch sharded across devices.

Each loss here is called inside :func:`jax.shard_map` (or :func:`jax.pmap`)
with every device along ``axis_name`` holding its slice of the global batch.
It returns the loss of the **global** batch, replicated on every device: the
single-device loss of :mod:`jaxloss.contrastive` (or
:func:`jaxloss.multiple_negatives_ranking_loss`) on the concatenation of the
slices in device order, in value and in gradient (embeddings, temperature,
scale and bias alike, with ``jax.grad`` taken outside ``shard_map``, or
inside it with ``check_vma`` on). :func:`shard` wraps a loss in
``shard_map`` for callers that hold globally sharded arrays.

Two strategies give the same values:

* ``strategy="ring"`` (default): the other side's embeddings travel round a
  ring of devices in ``D − 1`` ``jax.lax.ppermute`` steps; each block that
  arrives is folded into an online log-sum-exp ``chunk_size`` columns at a
  time, and a custom VJP re-runs the ring in the backward pass, carrying each
  block's gradient back to its owner (Inf-CL, Wang et al. 2024). Temporary
  memory per device is O(b · chunk + b · dim) for a local batch ``b``,
  whatever the number of devices ``D``. Reverse-mode differentiation only.
* ``strategy="all_gather"``: ``jax.lax.all_gather(tiled=True)`` of the other
  side; ``b × D·b`` logits per device (chunked if ``chunk_size`` is given).

Every array argument (embeddings, ``labels``, ``negatives``, ``where``,
``weights``) is the local slice of a global array along axis 0; scalar
hyper-parameters are the same on every device (learned ones get the gradient
of the global loss). ``reduction`` defaults to ``"mean"``; ``"sum"``,
``"mean"`` and ``"batchmean"`` reduce over the global batch and are
replicated, ``"none"`` returns this device's slice of the per-example values.

>>> import jax, jax.numpy as jnp
>>> import jaxloss, jaxloss.distributed as jd
>>> mesh = jax.make_mesh((1,), ("data",))  # one device here; any number works
>>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]])
>>> xs = jax.device_put(x, jax.NamedSharding(mesh, jax.P("data")))
>>> loss = jax.jit(jax.shard_map(
...     lambda x, y: jd.clip_loss(x, y, axis_name="data", temperature=0.5),
...     mesh=mesh, in_specs=jax.P("data"), out_specs=jax.P()))
>>> print(f"{loss(xs, xs):.6f}")
0.713195
>>> print(f"{jaxloss.clip_loss(x, x, temperature=0.5, reduction='mean'):.6f}")
0.713195

References:
  Wang et al., `Breaking the Memory Barrier: Near Infinite Batch Size Scaling
  for Contrastive Loss <https://arxiv.org/abs/2410.17243>`_, 2024 (Inf-CL);
  Zhai, Mustafa, Kolesnikov and Beyer, `Sigmoid Loss for Language Image
  Pre-Training <https://arxiv.org/abs/2303.15343>`_, 2023 (chunked SigLIP).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss._core import checks, in_batch, ring, value_checks
from jaxloss._core import reduction as reduction_lib

# --------------------------------------------------------------------------- #
# shared set-up: options, the stats function, the global reduction


def _setup(name, axis_name, strategy, chunk_size, reduction):
  """Checks the options; returns the ``stats`` function of ``strategy``."""
  checks.option(name, "strategy", strategy, ring.STRATEGIES)
  checks.option(name, "reduction", reduction, reduction_lib.REDUCTIONS)
  chunk_size = checks.chunk_size(name, chunk_size)
  ring.axis_size(name, axis_name)  # a clear error outside shard_map / pmap.
  return ring.stats_fn(strategy, axis_name, chunk_size)


def _reduce(values, keep, weights, reduction, axis_name, name):
  """:func:`jaxloss.reduce` over the global batch (``"none"``: local values)."""
  local = functools.partial(
    reduction_lib.reduce, weights=weights, where=keep, name=name
  )
  if reduction == "none":
    return local(values, "none")
  total = jax.lax.psum(local(values, "sum"), axis_name)
  if reduction == "sum":
    return total
  if reduction == "batchmean":
    return total / (values.shape[0] * ring.axis_size(name, axis_name))
  count = jax.lax.psum(local(jnp.ones_like(values), "sum"), axis_name)
  return total / jnp.where(count == 0, jnp.ones_like(count), count)


# --------------------------------------------------------------------------- #
# losses


@value_checks.value_rules(temperature=value_checks.positive)
def clip_loss(
  image_embeddings,
  text_embeddings,
  *,
  axis_name,
  strategy="ring",
  temperature=0.07,
  normalize=True,
  chunk_size=None,
  where=None,
  weights=None,
  reduction="mean",
):
  r"""CLIP's symmetric contrastive loss over the global batch of pairs.

  .. math::
    L = \frac{\hat x \hat y^\top}{\tau}, \qquad
    \ell_i = \tfrac12 \Big(\big(\log\textstyle\sum_j e^{L_{ij}} - L_{ii}\big)
                   + \big(\log\textstyle\sum_j e^{L_{ji}} - L_{ii}\big)\Big)

  with ``i, j`` over the global batch: :func:`jaxloss.clip_loss` of the
  concatenated slices.

  Args:
    image_embeddings: ``[b, dim]`` this device's image embeddings ``x``.
    text_embeddings: ``[b, dim]`` text embeddings ``y`` of the same pairs.
    axis_name: the mesh (or pmap) axis, or tuple of axes, the batch is
      sharded over.
    strategy: ``"ring"`` or ``"all_gather"`` (see the module docstring).
    temperature: ``τ > 0``, the same on every device; may be traced.
    normalize: L2-normalise the embeddings first.
    chunk_size: columns per chunk of the online log-sum-exp (``"ring"``:
      ``None`` means the whole received block; ``"all_gather"``: ``None``
      means dense).
    where: optional ``[b]`` mask; a masked pair takes no part anywhere.
    weights: optional per-pair weights, broadcastable to ``[b]``.
    reduction: see :func:`jaxloss.reduce`, over the global batch; default
      ``"mean"``.

  Returns:
    A scalar, replicated (``[b]`` local values for ``"none"``).

  Matches :func:`jaxloss.clip_loss` on the concatenated global batch, value
  and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jd.shard(jd.clip_loss, mesh)(x, x, temperature=0.5)
  Array(0.12692809, dtype=float32)

  References:
    Radford et al., `Learning Transferable Visual Models From Natural
    Language Supervision <https://arxiv.org/abs/2103.00020>`_, 2021.
  """
  name = "clip_loss"
  images, texts = in_batch.embedding_pair(
    name,
    "image_embeddings",
    "text_embeddings",
    image_embeddings,
    text_embeddings,
  )
  checks.positive(name, "temperature", temperature)
  stats = _setup(name, axis_name, strategy, chunk_size, reduction)
  keep = in_batch.example_mask(name, where, images.shape[:1])
  values = in_batch.clip_values(
    images,
    texts,
    checks.scalar(name, "temperature", temperature),
    keep,
    normalize=bool(normalize),
    stats=stats,
  )
  return _reduce(values, keep, weights, reduction, axis_name, name)


@value_checks.value_rules(logit_scale=value_checks.positive)
def siglip_loss(
  image_embeddings,
  text_embeddings,
  *,
  axis_name,
  strategy="ring",
  logit_scale=10.0,
  logit_bias=-10.0,
  normalize=True,
  chunk_size=None,
  where=None,
  weights=None,
  reduction="mean",
):
  r"""SigLIP's pairwise sigmoid loss over the global batch.

  .. math::
    \ell_i = -\sum_j \log \sigma\big(z_{ij} (t\, \hat x_i \cdot \hat y_j + b)\big),
    \qquad z_{ij} = \begin{cases} +1 & i = j \\ -1 & i \ne j \end{cases}

  with ``i, j`` over the global batch: :func:`jaxloss.siglip_loss` of the
  concatenated slices (``"mean"`` divides by the global batch, as
  big_vision does).

  Args:
    image_embeddings: ``[b, dim]`` this device's image embeddings ``x``.
    text_embeddings: ``[b, dim]`` text embeddings ``y`` of the same pairs.
    axis_name: the mesh (or pmap) axis, or tuple of axes, of the batch.
    strategy: ``"ring"`` or ``"all_gather"``.
    logit_scale: the scale ``t > 0`` itself (pass ``jnp.exp(t')`` for a
      learned log-scale); may be traced.
    logit_bias: the bias ``b``; may be traced.
    normalize: L2-normalise the embeddings first.
    chunk_size: text columns per chunk (``None``: the whole block or dense).
    where: optional ``[b]`` mask; a masked pair is neither a row nor a column.
    weights: optional per-image weights, broadcastable to ``[b]``.
    reduction: see :func:`jaxloss.reduce`, global; default ``"mean"``.

  Returns:
    A scalar, replicated (``[b]`` local row sums for ``"none"``).

  Matches :func:`jaxloss.siglip_loss` on the concatenated global batch, value
  and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jd.shard(jd.siglip_loss, mesh)(x, x, strategy="all_gather")
  Array(0.6931926, dtype=float32)

  References:
    Zhai, Mustafa, Kolesnikov and Beyer, `Sigmoid Loss for Language Image
    Pre-Training <https://arxiv.org/abs/2303.15343>`_, 2023.
  """
  name = "siglip_loss"
  images, texts = in_batch.embedding_pair(
    name,
    "image_embeddings",
    "text_embeddings",
    image_embeddings,
    text_embeddings,
  )
  checks.positive(name, "logit_scale", logit_scale)
  stats = _setup(name, axis_name, strategy, chunk_size, reduction)
  keep = in_batch.example_mask(name, where, images.shape[:1])
  values = in_batch.siglip_values(
    images,
    texts,
    checks.scalar(name, "logit_scale", logit_scale),
    checks.scalar(name, "logit_bias", logit_bias),
    keep,
    normalize=bool(normalize),
    stats=stats,
    start=ring.start_index(axis_name, images.shape[0]),
  )
  return _reduce(values, keep, weights, reduction, axis_name, name)


@value_checks.value_rules(temperature=value_checks.positive)
def infonce_loss(
  anchors,
  positives,
  negatives=None,
  *,
  axis_name,
  strategy="ring",
  temperature=0.07,
  similarity="cosine",
  chunk_size=None,
  where=None,
  weights=None,
  reduction="mean",
):
  r"""InfoNCE with the global batch's positives as candidates.

  .. math::
    \ell_i = -\log \frac{e^{s(a_i, p_i)/\tau}}
      {\sum_j e^{s(a_i, p_j)/\tau} + \sum_k e^{s(a_i, n_k)/\tau}}

  with ``j`` over the global batch: :func:`jaxloss.infonce_loss` of the
  concatenated slices.

  Args:
    anchors: ``[b, dim]`` this device's anchors.
    positives: ``[b, dim]`` their positives.
    negatives: optional ``[b, k, dim]`` per-anchor negatives (used locally),
      or ``[m, dim]``: this device's slice of the global shared negatives,
      which every anchor of the global batch sees.
    axis_name: the mesh (or pmap) axis, or tuple of axes, of the batch.
    strategy: ``"ring"`` or ``"all_gather"``.
    temperature: ``τ > 0``; may be traced.
    similarity: ``"cosine"`` or ``"dot"``.
    chunk_size: candidate columns per chunk (``None``: the whole block or
      dense).
    where: optional ``[b]`` mask; a masked example is neither an anchor nor a
      candidate (shared negatives stay candidates).
    weights: optional per-anchor weights, broadcastable to ``[b]``.
    reduction: see :func:`jaxloss.reduce`, global; default ``"mean"``.

  Returns:
    A scalar, replicated (``[b]`` local values for ``"none"``).

  Matches :func:`jaxloss.infonce_loss` on the concatenated global batch, value
  and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> jd.shard(jd.infonce_loss, mesh)(a, a, temperature=1.0)
  Array(0.31326163, dtype=float32)

  References:
    van den Oord, Li and Vinyals, `Representation Learning with Contrastive
    Predictive Coding <https://arxiv.org/abs/1807.03748>`_, 2018.
  """
  name = "infonce_loss"
  anchors, positives, negatives = in_batch.infonce_inputs(
    name, anchors, positives, negatives
  )
  checks.option(name, "similarity", similarity, in_batch.SIMILARITIES)
  checks.positive(name, "temperature", temperature)
  stats = _setup(name, axis_name, strategy, chunk_size, reduction)
  keep = in_batch.example_mask(name, where, anchors.shape[:1])
  values = in_batch.infonce_values(
    anchors,
    positives,
    negatives,
    checks.scalar(name, "temperature", temperature),
    keep,
    similarity=similarity,
    stats=stats,
  )
  return _reduce(values, keep, weights, reduction, axis_name, name)


@value_checks.value_rules(
  temperature=value_checks.positive, base_temperature=value_checks.positive
)
def supervised_contrastive_loss(
  embeddings,
  labels,
  *,
  axis_name,
  strategy="ring",
  temperature=0.07,
  base_temperature=0.07,
  chunk_size=None,
  where=None,
  weights=None,
  reduction="mean",
):
  r"""Supervised contrastive (SupCon) loss over the global batch.

  .. math::
    \ell_a = -\frac{\tau}{\tau_b} \frac{1}{|P(a)|} \sum_{p \in P(a)}
      \log \frac{e^{z_a \cdot z_p / \tau}}{\sum_{c \ne a} e^{z_a \cdot z_c / \tau}}

  with ``a, p, c`` over every view of the global batch; the labels travel
  with the embeddings. :func:`jaxloss.supervised_contrastive_loss` of the
  concatenated slices; anchors without positives are left out of ``"mean"``.

  Args:
    embeddings: ``[b, dim]`` or ``[b, views, dim]`` this device's
      embeddings, used as given.
    labels: ``[b]`` integer labels, or ``None``: each example of the global
      batch its own class (the positives are its other views).
    axis_name: the mesh (or pmap) axis, or tuple of axes, of the batch.
    strategy: ``"ring"`` or ``"all_gather"``.
    temperature: ``τ > 0``; may be traced.
    base_temperature: ``τ_b > 0``.
    chunk_size: candidate views per chunk (``None``: the whole block or
      dense).
    where: optional mask broadcastable to ``[b]`` or ``[b, views]``.
    weights: optional weights broadcastable to the per-anchor shape.
    reduction: see :func:`jaxloss.reduce`, global; default ``"mean"``.

  Returns:
    A scalar, replicated (``[b]`` or ``[b, views]`` local values for
    ``"none"``).

  Matches :func:`jaxloss.supervised_contrastive_loss` on the concatenated
  global batch, value and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  >>> jd.shard(jd.supervised_contrastive_loss, mesh)(
  ...     x, jnp.array([0, 0, 1]), temperature=1.0, base_temperature=1.0)
  Array(0.31326163, dtype=float32)

  References:
    Khosla et al., `Supervised Contrastive Learning
    <https://arxiv.org/abs/2004.11362>`_, 2020.
  """
  name = "supervised_contrastive_loss"
  embeddings = checks.as_float(name, "embeddings", embeddings)
  checks.rank(name, "embeddings", embeddings, {2, 3})
  batch = embeddings.shape[0]
  if labels is not None:
    labels = checks.as_labels(name, "labels", labels)
    checks.shape(name, "labels", labels, (batch,), "one label per example")
  checks.positive(name, "temperature", temperature)
  checks.positive(name, "base_temperature", base_temperature)
  stats = _setup(name, axis_name, strategy, chunk_size, reduction)
  start = ring.start_index(axis_name, batch)
  if labels is None:
    labels = start + jnp.arange(batch)
  keep = in_batch.example_mask(name, where, embeddings.shape[:-1])
  values, keep = in_batch.supervised_values(
    embeddings,
    labels,
    checks.scalar(name, "temperature", temperature),
    checks.scalar(name, "base_temperature", base_temperature),
    keep,
    stats=stats,
    start=start,
  )
  return _reduce(values, keep, weights, reduction, axis_name, name)


def multiple_negatives_ranking_loss(
  anchors,
  positives,
  negatives=None,
  *,
  axis_name,
  strategy="ring",
  scale=20.0,
  similarity="cosine",
  symmetric=False,
  chunk_size=None,
  where=None,
  weights=None,
  reduction="mean",
):
  r"""In-batch softmax ranking loss with the global batch as candidates.

  .. math::
    \ell_i^{\to} = -\log \frac{e^{\lambda\, \mathrm{sim}(a_i, p_i)}}
      {\sum_j e^{\lambda\, \mathrm{sim}(a_i, p_j)}
       + \sum_{j, n} e^{\lambda\, \mathrm{sim}(a_i, n_{jn})}}

  with ``j`` over the global batch; with ``symmetric``, averaged with
  :math:`\ell_i^{\leftarrow}`, which picks the anchor of positive ``i``
  among all anchors. :func:`jaxloss.multiple_negatives_ranking_loss` of the
  concatenated slices.

  Args:
    anchors: ``[b, dim]`` this device's anchors.
    positives: ``[b, dim]`` their positives.
    negatives: optional hard negatives ``[b, dim]`` or ``[b, k, dim]``; every
      anchor of the global batch sees all of them.
    axis_name: the mesh (or pmap) axis, or tuple of axes, of the batch.
    strategy: ``"ring"`` or ``"all_gather"``.
    scale: ``λ > 0``, the inverse temperature; may be traced.
    similarity: ``"cosine"`` (``x / max(‖x‖, 1e-12)``) or ``"dot"``.
    symmetric: also the positive → anchor direction.
    chunk_size: candidate columns per chunk (``None``: the whole block or
      dense).
    where: optional ``[b]`` mask; a masked example leaves the batch, with its
      positive and negatives.
    weights: optional per-anchor weights, broadcastable to ``[b]``.
    reduction: see :func:`jaxloss.reduce`, global; default ``"mean"``.

  Returns:
    A scalar, replicated (``[b]`` local values for ``"none"``).

  Matches :func:`jaxloss.multiple_negatives_ranking_loss` on the concatenated
  global batch, value and gradients.

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> p = jnp.array([[1.0, 0.1], [0.2, 1.0]])
  >>> jd.shard(jd.multiple_negatives_ranking_loss, mesh)(a, p, scale=5.0)
  Array(0.0151..., dtype=float32)

  References:
    Henderson et al., `Efficient Natural Language Response Suggestion for
    Smart Reply <https://arxiv.org/abs/1705.00652>`_, 2017.
  """
  name = "multiple_negatives_ranking_loss"
  checks.option(name, "similarity", similarity, in_batch.SIMILARITIES)
  checks.positive(name, "scale", scale)
  # The single-device loss's checks and normalisation (torch's eps).
  anchors, positives, negatives = in_batch.retrieval_inputs(
    name, anchors, positives, negatives
  )
  stats = _setup(name, axis_name, strategy, chunk_size, reduction)
  batch, dim = anchors.shape
  keep = in_batch.example_mask(name, where, (batch,))
  if similarity == "cosine":
    anchors, positives = (
      in_batch.torch_unit(anchors),
      in_batch.torch_unit(positives),
    )
    negatives = None if negatives is None else in_batch.torch_unit(negatives)
  scale = checks.scalar(name, "scale", scale).astype(anchors.dtype)
  columns = {"x": positives, "keep": keep}
  if negatives is not None:  # candidates: all positives, then all negatives.
    k = negatives.shape[1]
    columns = {
      "x": jnp.concatenate([positives, negatives.reshape(batch * k, dim)]),
      "keep": jnp.concatenate([keep, jnp.repeat(keep, k)]),
    }
  result = stats(
    in_batch.similarities,
    {"x": anchors, "scale": scale, "keep": keep},
    columns,
    col_lse=symmetric,
  )
  target = jnp.sum(anchors * positives, axis=1) * scale
  values = result.row_lse - target
  if symmetric:  # each positive's log-sum-exp over all anchors.
    values = 0.5 * (values + result.col_lse[:batch] - target)
  return _reduce(values, keep, weights, reduction, axis_name, name)


_LOSSES = (
  clip_loss,
  siglip_loss,
  infonce_loss,
  supervised_contrastive_loss,
  multiple_negatives_ranking_loss,
)


# --------------------------------------------------------------------------- #
# shard_map wrapper


def shard(loss_fn, mesh, axis="data"):
  """Wraps one of this module's losses in :func:`jax.shard_map` over ``axis``.

  The returned function takes the loss's arguments as **global** arrays
  (sharded or not; under ``jit`` or eagerly) and passes the loss
  ``axis_name=axis``. Array arguments of rank ≥ 1 (embeddings, ``labels``,
  ``negatives``, ``where``, ``weights``) are split along axis 0 over
  ``axis``, so their leading sizes must be multiples of its size; scalar
  arrays (a learned temperature) are replicated; Python values (options,
  fixed hyper-parameters) are passed through. Other mesh axes (a model axis)
  see replicated inputs and are not used. On a mesh whose ``axis`` is
  ``Explicit`` the inputs are first ``jax.reshard``-ed to that layout.

  Args:
    loss_fn: one of this module's losses.
    mesh: a :class:`jax.sharding.Mesh`.
    axis: the mesh axis (or tuple of axes) that the batch is sharded over.

  Returns:
    A function with ``loss_fn``'s signature, less ``axis_name``; it returns
    the replicated scalar loss (or the ``[batch, ...]`` per-example values,
    sharded over ``axis``, for ``reduction="none"``).

  >>> import jax, jax.numpy as jnp, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> loss = jax.jit(jd.shard(jd.clip_loss, mesh))
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> loss(x, x, temperature=jnp.array(0.5))
  Array(0.12692809, dtype=float32)
  """
  if not any(loss_fn is fn for fn in _LOSSES):
    raise ValueError(
      f"shard: loss_fn must be one of jaxloss.distributed's losses "
      f"({', '.join(fn.__name__ for fn in _LOSSES)}), got {loss_fn!r}; the "
      "single-device losses of jaxloss do not communicate."
    )
  axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
  unknown = [a for a in axes if a not in mesh.axis_names]
  if unknown:
    raise ValueError(
      f"shard: axis {axis!r} is not an axis of the mesh "
      f"(axes {tuple(mesh.axis_names)})."
    )
  axis_name = axes[0] if len(axes) == 1 else axes
  spec = jax.P(axis_name)
  devices = int(np.prod([mesh.shape[a] for a in axes]))
  types = dict(zip(mesh.axis_names, mesh.axis_types))
  explicit = all(types[a] == jax.sharding.AxisType.Explicit for a in axes)

  @functools.wraps(loss_fn)
  def sharded(*args, **kwargs):
    if "axis_name" in kwargs:
      raise ValueError(
        f"shard({loss_fn.__name__}): axis_name is set by shard "
        f"(axis={axis!r}); do not pass it."
      )
    names = [f"argument {i}" for i in range(len(args))] + list(kwargs)
    values = list(args) + list(kwargs.values())
    is_array = [isinstance(v, (jax.Array, np.ndarray)) for v in values]
    arrays = [jnp.asarray(v) for v, a in zip(values, is_array) if a]
    specs = tuple(jax.P() if x.ndim == 0 else spec for x in arrays)
    for arg, x in zip([n for n, a in zip(names, is_array) if a], arrays):
      if x.ndim and x.shape[0] % devices:
        raise ValueError(
          f"shard({loss_fn.__name__}): {arg} has {x.shape[0]} rows, not a "
          f"multiple of the {devices} devices of axis {axis!r}."
        )
    if explicit:
      arrays = [
        jax.reshard(x, jax.NamedSharding(mesh, s))
        for x, s in zip(arrays, specs)
      ]

    def local(*shards):
      it = iter(shards)
      full = [next(it) if a else v for v, a in zip(values, is_array)]
      return loss_fn(
        *full[: len(args)],
        axis_name=axis_name,
        **dict(zip(kwargs, full[len(args) :])),
      )

    out_specs = spec if kwargs.get("reduction", "mean") == "none" else jax.P()
    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=out_specs)(
      *arrays
    )

  return sharded


__all__ = [
  "clip_loss",
  "infonce_loss",
  "multiple_negatives_ranking_loss",
  "shard",
  "siglip_loss",
  "supervised_contrastive_loss",
]
