"""From losses to an optax step: objectives, jitted steps and GradCache.

An *objective* is a function ``(params, batch) -> (loss, aux)``: it runs the
model, evaluates named loss terms on its outputs and the batch, combines them
(a weighted sum by default) and logs every term in ``aux``. Masks and weights
are read from the batch at each call, so they are data, not constants baked
into a compiled step. ``params`` is whatever the model's apply function takes:
a pytree of arrays, or an ``nnx.Module``.

* :func:`objective` and :func:`term` build it;
* :func:`step` makes a jitted optax step for a pytree of parameters (any
  optax transformation, ``optax.lbfgs`` and ``optax.MultiSteps`` included);
* :func:`nnx_step` makes the same for an ``nnx.Module`` and ``nnx.Optimizer``;
* :func:`value` drops ``aux``, for ``optax.value_and_grad_from_state``;
* :func:`grad_cache` computes a contrastive loss's gradients on a batch far
  larger than the encoder's activations allow (Gao et al. 2021).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

__all__ = ["grad_cache", "nnx_step", "objective", "step", "term", "value"]

Objective = Callable[[Any, Any], tuple[jax.Array, dict]]


def term(
  loss_fn: Callable,
  *keys: str,
  output: Hashable | None = None,
  where: str | None = None,
  weights: str | None = None,
  reduction: str | None = "mean",
  **options: Any,
) -> Callable:
  """A loss term ``(outputs, batch) -> loss`` for :func:`objective`.

  The term computes::

    loss_fn(outputs[output], *(batch[k] for k in keys),
            where=batch[where], weights=batch[weights],
            reduction=reduction, **options)

  where ``outputs[output]`` is the whole of ``outputs`` when ``output`` is
  ``None``, and ``where``/``weights``/``reduction`` are passed only when they
  are not ``None``. For anything else, write the term yourself as a function
  ``(outputs, batch) -> scalar``.

  Args:
    loss_fn: a loss, e.g. ``jaxloss.softmax_cross_entropy_with_integer_labels``.
    *keys: batch entries passed positionally after the model's output.
    output: the key (or index) of the model output the loss takes, if the
      model returns a dict or tuple.
    where: the batch entry holding the boolean mask, if any.
    weights: the batch entry holding the weights, if any.
    reduction: passed to the loss; default ``"mean"``, the training loss.
    **options: other keyword arguments of ``loss_fn`` (static values).

  Returns:
    A function ``(outputs, batch) -> loss``.

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> ce = jl.train.term(jl.softmax_cross_entropy_with_integer_labels, "y",
  ...                    where="mask")
  >>> batch = {"y": jnp.array([0, 1]), "mask": jnp.array([True, False])}
  >>> float(ce(jnp.array([[0.0, 0.0], [5.0, -5.0]]), batch))  # log 2
  0.6931...
  """

  name = getattr(loss_fn, "__name__", "term")

  def entry(batch, key):
    try:
      return batch[key]
    except (KeyError, IndexError, TypeError):
      present = sorted(map(repr, batch)) if isinstance(batch, Mapping) else []
      raise KeyError(
        f"jaxloss.train.term({name}): the batch has no entry {key!r}"
        + (f"; its keys are {', '.join(present)}" if present else "")
      ) from None

  def loss(outputs, batch):
    x = outputs if output is None else outputs[output]
    kwargs = dict(options)
    if where is not None:
      kwargs["where"] = entry(batch, where)
    if weights is not None:
      kwargs["weights"] = entry(batch, weights)
    if reduction is not None:
      kwargs["reduction"] = reduction
    return loss_fn(x, *(entry(batch, k) for k in keys), **kwargs)

  loss.__name__ = name
  return loss


def _terms(losses: Mapping) -> dict[str, tuple[Callable, Any]]:
  terms = {}
  for name, spec in losses.items():
    fn, weight = spec if isinstance(spec, tuple) else (spec, 1.0)
    if name == "loss":
      raise ValueError(
        "objective: `loss` is the name of the total in aux; "
        "give the term another name."
      )
    if not callable(fn):
      raise TypeError(
        f"objective: term {name!r} must be a function "
        f"(outputs, batch) -> loss or a (function, weight) "
        f"pair, got {spec!r}."
      )
    terms[name] = (fn, weight)
  if not terms:
    raise ValueError("objective: `losses` must name at least one term.")
  return terms


def objective(
  apply_fn: Callable, losses: Mapping, *, combine: Callable | None = None
) -> Objective:
  r"""Builds ``(params, batch) -> (loss, aux)`` from a model and named losses.

  .. math::
    L(\theta) = \mathrm{combine}\big(\theta, \{n: w_n L_n\}\big),
    \qquad \mathrm{combine} = \textstyle\sum_n w_n L_n \ \text{by default}

  with ``L_n = loss_fn_n(apply_fn(params, batch), batch)``.

  Args:
    apply_fn: ``(params, batch) -> outputs``; ``params`` is a pytree (e.g.
      ``lambda p, b: model.apply(p, b["x"])``) or an ``nnx.Module``
      (``lambda m, b: m(b["x"])``). A PRNG key for dropout can travel in the
      batch.
    losses: ``{name: loss_fn}`` or ``{name: (loss_fn, weight)}``, each
      ``loss_fn(outputs, batch) -> scalar`` (see :func:`term`); the weight
      defaults to 1 and may be a traced value.
    combine: optional ``(params, weighted) -> scalar`` replacing the sum,
      e.g. ``lambda m, w: m.weighting(w)`` for a
      :class:`jaxloss.nn.UncertaintyWeighting` inside an NNX model.

  Returns:
    ``objective(params, batch) -> (loss, aux)`` with
    ``aux = {"loss": loss, name: L_name, ...}`` (the unweighted terms),
    ready for ``jax.value_and_grad(objective, has_aux=True)``.

  >>> import jax, jax.numpy as jnp, jaxloss as jl
  >>> obj = jl.train.objective(lambda p, b: b["x"] @ p, {
  ...     "mse": jl.train.term(jl.squared_error, "y"),
  ...     "mae": (jl.train.term(jl.absolute_error, "y"), 0.5)})
  >>> batch = {"x": jnp.eye(2), "y": jnp.array([1.0, 3.0])}
  >>> loss, aux = obj(jnp.zeros(2), batch)
  >>> float(loss), float(aux["mse"]), float(aux["mae"])
  (6.0, 5.0, 2.0)
  """
  terms = _terms(losses)

  def fn(params, batch):
    outputs = apply_fn(params, batch)
    values = {name: loss(outputs, batch) for name, (loss, _) in terms.items()}
    for name, v in values.items():
      if jnp.ndim(v) != 0:
        raise ValueError(
          f"objective: term {name!r} must return a scalar, got "
          f"shape {jnp.shape(v)}; use a reducing `reduction`."
        )
    weighted = {
      name: weight * values[name] for name, (_, weight) in terms.items()
    }
    if combine is None:
      total = sum(weighted.values())
    else:
      total = combine(params, weighted)
    return total, {"loss": total, **values}

  return fn


def value(objective_fn: Objective) -> Callable:
  """``(params, *args) -> loss``: the objective without its ``aux``, for
  ``optax.value_and_grad_from_state`` (which takes no ``has_aux``).

  Args:
    objective_fn: an objective from :func:`objective`.

  Returns:
    A function ``(params, *args, **kwargs) -> loss`` (the scalar total).

  >>> import jax.numpy as jnp, jaxloss as jl
  >>> obj = jl.train.objective(lambda p, b: p,
  ...                          {"l2": jl.train.term(jl.l2_loss)})
  >>> float(jl.train.value(obj)(jnp.array([2.0]), None))
  2.0
  """
  return lambda params, *args, **kwargs: objective_fn(params, *args, **kwargs)[
    0
  ]


def _extra_args(optimizer):
  """Optax transformations that ignore ``value``/``grad``/``value_fn`` are
  wrapped so that every optimizer can be called with them; objects with their
  own ``update(..., **extra_args)`` (``optax.MultiSteps``) pass through."""
  if isinstance(optimizer, optax.GradientTransformation):
    return optax.with_extra_args_support(optimizer)
  return optimizer


def _strong(tree):
  """Weakly typed leaves made strong. Optax initialises some state entries
  (e.g. ``optax.lbfgs``'s line-search info) as weakly typed scalars that the
  first update returns strong, which would compile the step twice."""
  return jax.tree.map(
    lambda x: jnp.asarray(x, x.dtype) if getattr(x, "weak_type", False) else x,
    tree,
  )


def step(
  objective_fn: Objective,
  optimizer: optax.GradientTransformation,
  *,
  jit: bool = True,
) -> Callable:
  """A (jitted) optax training step for a pytree of parameters.

  Each call computes ``(loss, aux)`` and the gradient with
  ``jax.value_and_grad(objective_fn, has_aux=True)``, then
  ``optimizer.update(grads, opt_state, params, value=loss, grad=grads,
  value_fn=...)``, so line-search optimizers such as ``optax.lbfgs`` work as
  well as ``optax.adamw``; ``optax.MultiSteps`` accumulates as usual.

  Args:
    objective_fn: ``(params, batch) -> (loss, aux)``, e.g. from
      :func:`objective`.
    optimizer: an optax ``GradientTransformation`` or ``optax.MultiSteps``.
    jit: wrap the step in ``jax.jit``.

  Returns:
    ``step(params, opt_state, batch) -> (params, opt_state, aux)``. Create
    the state with ``optimizer.init(params)``.

  >>> import jax.numpy as jnp, optax, jaxloss as jl
  >>> obj = jl.train.objective(lambda p, b: p - b,
  ...                          {"l2": jl.train.term(jl.l2_loss)})
  >>> opt = optax.sgd(0.5)
  >>> train_step = jl.train.step(obj, opt)
  >>> params = jnp.zeros(2); state = opt.init(params)
  >>> params, state, aux = train_step(params, state, jnp.array([1.0, 2.0]))
  >>> params, float(aux["loss"])
  (Array([0.25, 0.5 ], dtype=float32), 1.25)
  """
  tx = _extra_args(optimizer)

  def step_fn(params, opt_state, batch):
    (loss, aux), grads = jax.value_and_grad(objective_fn, has_aux=True)(
      params, batch
    )
    updates, opt_state = tx.update(
      grads,
      opt_state,
      params,
      value=loss,
      grad=grads,
      value_fn=lambda p: objective_fn(p, batch)[0],
    )
    return optax.apply_updates(params, updates), opt_state, aux

  if not jit:
    return step_fn
  jitted = jax.jit(step_fn)
  return lambda params, opt_state, batch: jitted(
    _strong(params), _strong(opt_state), batch
  )


def nnx_step(objective_fn: Objective) -> Callable:
  """An ``nnx.jit`` training step for an ``nnx.Module`` and ``nnx.Optimizer``.

  The gradient is taken with respect to the optimizer's ``wrt`` filter
  (``nnx.Param`` usually), and ``optimizer.update(model, grads)`` updates the
  model in place. State the model changes as it runs (batch statistics,
  dropout's ``Rngs``) is carried by ``nnx.jit``. Line-search optimizers need
  a function of the parameters: use :func:`step` on ``nnx.split``'s state.

  Args:
    objective_fn: ``(model, batch) -> (loss, aux)``, e.g. from
      :func:`objective` with ``apply_fn = lambda m, b: m(b["x"])``.

  Returns:
    ``step(model, optimizer, batch) -> aux``.

  >>> import jax.numpy as jnp, optax, jaxloss as jl
  >>> from flax import nnx
  >>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  >>> obj = jl.train.objective(lambda m, b: m(b["x"])[:, 0],
  ...                          {"mse": jl.train.term(jl.squared_error, "y")})
  >>> optimizer = nnx.Optimizer(model, optax.adam(0.1), wrt=nnx.Param)
  >>> train_step = jl.train.nnx_step(obj)
  >>> batch = {"x": jnp.eye(2), "y": jnp.array([1.0, -1.0])}
  >>> first = train_step(model, optimizer, batch)["mse"]
  >>> for _ in range(20): aux = train_step(model, optimizer, batch)
  >>> bool(aux["mse"] < first)
  True
  """

  @nnx.jit
  def step_fn(model, optimizer, batch):
    grad_fn = nnx.value_and_grad(
      objective_fn, argnums=nnx.DiffState(0, optimizer.wrt), has_aux=True
    )
    (_, aux), grads = grad_fn(model, batch)
    optimizer.update(model, grads)
    return aux

  return step_fn


def _leading_size(inputs) -> int:
  sizes = {
    jnp.shape(x)[0] if jnp.ndim(x) else -1 for x in jax.tree.leaves(inputs)
  }
  if len(sizes) != 1 or -1 in sizes:
    raise ValueError(
      f"grad_cache: every input must have the same leading "
      f"(batch) axis, got leading sizes "
      f"{sorted(sizes)} (-1: a scalar)."
    )
  return sizes.pop()


def grad_cache(
  encode_fn: Callable, loss_fn: Callable, *, mini_batch_size: int
) -> Callable:
  r"""Loss and parameter gradients of a batch-level loss, mini-batch by
  mini-batch (GradCache).

  For embeddings ``E = [f_θ(x_1); …; f_θ(x_K)]`` of ``K`` mini-batches and a
  loss ``L(θ, E)`` that couples the whole batch (a contrastive loss):

  .. math::
    \nabla_\theta L = \frac{\partial L}{\partial \theta}
      + \sum_{k=1}^{K} \Big(\frac{\partial f_\theta(x_k)}{\partial \theta}
        \Big)^{\!\top} \frac{\partial L}{\partial E_k}

  1. embed every mini-batch (``jax.lax.map``, no gradient, so no
     activations are kept);
  2. compute the loss and its gradient with respect to ``E`` (and ``θ``);
  3. re-run each mini-batch's forward pass with ``jax.vjp`` and pull the
     cached embedding gradient back to the parameters, summed over
     mini-batches in a ``jax.lax.scan``.

  The encoder's temporary memory is that of one mini-batch; the full batch
  only exists as embeddings. The gradient equals ``jax.grad`` of the
  full-batch loss (with dropout, the ``k``-th mini-batch gets the ``k``-th
  of ``jax.random.split(key, K)`` in both passes, so both see the same
  masks).

  Args:
    encode_fn: ``(params, inputs) -> embeddings``, or ``(params, inputs,
      key) -> embeddings`` when a key is given; ``inputs`` and
      ``embeddings`` are pytrees of arrays with a leading batch axis (e.g.
      ``(images, texts) -> (image_embeddings, text_embeddings)``).
    loss_fn: ``(params, embeddings) -> scalar`` on the full batch's
      embeddings (``params`` for learned parts of the loss, such as a
      temperature).
    mini_batch_size: examples per mini-batch; must divide the batch size.

  Returns:
    ``value_and_grad(params, inputs, key=None) -> (loss, grads)``, to be
    used inside ``jax.jit``; ``params`` is a pytree of floating arrays. For
    an NNX encoder pass ``nnx.split``'s state and rebuild the module inside
    ``encode_fn``: ``lambda state, x: nnx.merge(graphdef, state)(x)``.

  >>> import jax, jax.numpy as jnp, jaxloss as jl
  >>> encode = lambda w, x: (x[0] @ w, x[1] @ w)
  >>> loss = lambda w, e: jl.clip_loss(*e, reduction="mean")
  >>> x = (jax.random.normal(jax.random.key(0), (8, 3)),
  ...      jax.random.normal(jax.random.key(1), (8, 3)))
  >>> w = jnp.eye(3)
  >>> value, grads = jl.train.grad_cache(encode, loss, mini_batch_size=2)(w, x)
  >>> full = jax.value_and_grad(lambda w: loss(w, encode(w, x)))(w)
  >>> bool(jnp.allclose(value, full[0])
  ...      & jnp.allclose(grads, full[1], atol=1e-5))
  True

  References:
    Gao, Zhang, Han and Callan, `Scaling Deep Contrastive Learning Batch Size
    under Memory Limited Setup <https://arxiv.org/abs/2101.06983>`_, 2021.
  """
  if (
    not isinstance(mini_batch_size, int)
    or isinstance(mini_batch_size, bool)
    or mini_batch_size < 1
  ):
    raise ValueError(
      f"grad_cache: `mini_batch_size` must be a positive int, "
      f"got {mini_batch_size!r}."
    )

  def value_and_grad(params, inputs, key=None):
    batch = _leading_size(inputs)
    if batch % mini_batch_size:
      raise ValueError(
        f"grad_cache: `mini_batch_size` {mini_batch_size} must "
        f"divide the batch size {batch}."
      )
    count = batch // mini_batch_size
    split = lambda x: x.reshape(count, mini_batch_size, *x.shape[1:])
    merge = lambda x: x.reshape(count * mini_batch_size, *x.shape[2:])
    chunks = jax.tree.map(split, inputs)
    keys = None if key is None else jax.random.split(key, count)

    def encode(p, chunk, k):
      return encode_fn(p, chunk) if k is None else encode_fn(p, chunk, k)

    frozen = jax.lax.stop_gradient(params)
    embeddings = jax.lax.map(lambda xs: encode(frozen, *xs), (chunks, keys))
    embeddings = jax.tree.map(merge, embeddings)
    loss, (direct, cached) = jax.value_and_grad(loss_fn, argnums=(0, 1))(
      params, embeddings
    )

    def backward(total, xs):
      chunk, k, cotangent = xs
      _, pull = jax.vjp(lambda p: encode(p, chunk, k), params)
      return jax.tree.map(jnp.add, total, pull(cotangent)[0]), None

    grads, _ = jax.lax.scan(
      backward, direct, (chunks, keys, jax.tree.map(split, cached))
    )
    return loss, grads

  return value_and_grad
