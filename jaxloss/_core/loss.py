"""The ``@loss`` decorator: a public loss's name, said once.

Every public loss is decorated with :func:`loss`. While it runs (eagerly or
while ``jit`` traces it), its name is the one every check in
:mod:`jaxloss._core.checks` and :func:`jaxloss.reduce` put in their error
messages, so no loss passes its name by hand. When one public loss calls
another (``vae_loss`` calls ``gaussian_kl_divergence``), the outer name is
kept: the error names the function the user called.

The decorator also validates a ``reduction`` given by keyword before anything
is computed, and records the loss's run-time value rules for
:func:`jaxloss.checked` (``@loss(labels=value_checks.unit_interval)``).
"""

from __future__ import annotations

import contextvars
import functools
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
  """Marks a public loss: ``@loss`` or ``@loss(arg=rule, ...)``.

  The rules map an argument's name to a rule of
  :mod:`jaxloss._core.value_checks`; they cost nothing until the user wraps
  the loss with :func:`jaxloss.checked`.
  """

  def decorate(fn: F) -> F:
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
      if "reduction" in kwargs:
        named(name, reduction_lib.validate, kwargs["reduction"])
      return named(name, fn, *args, **kwargs)

    setattr(wrapper, VALUE_RULES, value_rules)
    return wrapper  # type: ignore[return-value]

  return decorate if fn is None else decorate(fn)
