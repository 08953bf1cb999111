"""The ``@loss`` decorator: a public loss's name, said once.

Every public loss is decorated with :func:`loss`. While it runs (eagerly or
while ``jit`` traces it), its name is the one every check in
:mod:`jaxloss._core.checks` and :func:`jaxloss.reduce` put in their error
messages, so no loss passes its name by hand. When one public loss calls
another (``vae_loss`` calls ``gaussian_kl_divergence``), the outer name is
kept: the error names the function the user called.

The decorator also validates a ``reduction`` (annotated ``Reduction``) given
by keyword before anything is computed, and records the loss's run-time
value rules for :func:`jaxloss.checked`
(``@loss(labels=value_checks.unit_interval)``).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from jaxloss._core import reduction as reduction_lib

F = TypeVar("F", bound=Callable[..., Any])

_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
  "jaxloss_loss_name", default=None
)
VALUE_RULES = "__jaxloss_value_rules__"


def current() -> str:
  """The name of the public loss now running (``"jaxloss"`` outside one)."""
  return _CURRENT.get() or "jaxloss"


def named(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
  """Calls ``fn`` with ``name`` as the current loss (unless one is running)."""
  if _CURRENT.get() is not None:
    return fn(*args, **kwargs)
  token = _CURRENT.set(name)
  try:
    return fn(*args, **kwargs)
  finally:
    _CURRENT.reset(token)


@overload
def loss(fn: F, /) -> F: ...
@overload
def loss(**value_rules: Any) -> Callable[[F], F]: ...
def loss(fn: Any = None, /, **value_rules: Any) -> Any:
  """Marks a function as a jaxloss loss: ``@loss`` or ``@loss(arg=rule)``.

  While the decorated function runs (eagerly, or while ``jit`` traces it),
  its name starts the message of every error that jaxloss's checks and
  :func:`jaxloss.reduce` raise; a ``reduction`` given by keyword is checked
  before the function runs. Every jaxloss loss carries it; decorate your own
  losses with it so that :mod:`jaxloss.testing` and :func:`jaxloss.checked`
  treat them alike.

  Args:
    fn: the loss function (when used as ``@loss`` without arguments).
    **value_rules: run-time value rules, argument name to a rule of
      ``jaxloss._core.value_checks``, applied only by
      :func:`jaxloss.checked`.

  Returns:
    The function with the same signature, docstring and values (or, called
    with rules only, a decorator).

  >>> import jax.numpy as jnp, jaxloss
  >>> @jaxloss.loss
  ... def my_l1(predictions, targets, *, reduction="none"):
  ...   values = jnp.abs(jnp.asarray(predictions) - jnp.asarray(targets))
  ...   return jaxloss.reduce(values, reduction)
  >>> my_l1(jnp.ones(2), jnp.zeros(2), reduction="mean")
  Array(1., dtype=float32)
  >>> my_l1(jnp.ones(2), jnp.zeros(2), reduction="average")
  Traceback (most recent call last):
  ...
  ValueError: my_l1: unknown reduction='average'; valid values are ...
  """

  def decorate(fn: F) -> F:
    name = fn.__name__
    reduction = inspect.signature(fn).parameters.get("reduction")
    # Only a `reduction` of the library's contract (annotated `Reduction`);
    # dice_loss's optax-style class `reduction` is checked by the loss.
    validates = reduction is not None and reduction.annotation in (
      "Reduction",
      reduction_lib.Reduction,
    )

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
      if validates and "reduction" in kwargs:
        named(name, reduction_lib.validate, kwargs["reduction"])
      return named(name, fn, *args, **kwargs)

    setattr(wrapper, VALUE_RULES, value_rules)
    return wrapper  # type: ignore[return-value]

  return decorate if fn is None else decorate(fn)
