"""The suite's shared assertions (closeness is jaxloss.testing.assert_close)."""

import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss.testing import assert_close

__all__ = ["assert_close", "checked_rejects"]


def checked_rejects(loss_fn, *args, arg: str, what: str = "", **kwargs):
  """``jaxloss.checked(loss_fn)`` raises on these inputs, naming the loss,
  the argument ``arg`` and (a regular expression) ``what`` is wrong."""
  match = f"{loss_fn.__name__}: argument `{arg}` {what}"
  with pytest.raises(checkify.JaxRuntimeError, match=match):
    jaxloss.checked(loss_fn)(*args, **kwargs)
