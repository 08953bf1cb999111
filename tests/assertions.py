"""The suite's shared assertions (closeness is jaxloss.testing.assert_close)."""

import functools

import jax
import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss.testing import assert_close

__all__ = ["assert_close", "checked_rejects", "scan_lengths"]


def checked_rejects(loss_fn, *args, arg: str, what: str = "", **kwargs):
  """``jaxloss.checked(loss_fn)`` raises on these inputs, naming the loss,
  the argument ``arg`` and (a regular expression) ``what`` is wrong."""
  match = f"{loss_fn.__name__}: argument `{arg}` {what}"
  with pytest.raises(checkify.JaxRuntimeError, match=match):
    jaxloss.checked(loss_fn)(*args, **kwargs)


def scan_lengths(fn, *args, **kwargs) -> list[int]:
  """The lengths of the ``lax.scan``s in ``fn``'s jaxpr (nested jaxprs
  included), traced on ``args`` (arrays or ``jax.ShapeDtypeStruct``s)."""

  def lengths(jaxpr):
    found = []
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "scan":
        found.append(eqn.params["length"])
      for param in eqn.params.values():
        inner = getattr(param, "jaxpr", param)  # a ClosedJaxpr or a Jaxpr
        if hasattr(inner, "eqns"):
          found += lengths(inner)
    return found

  return lengths(jax.make_jaxpr(functools.partial(fn, **kwargs))(*args).jaxpr)


def linear_temp_bytes(fn, tokens, dim, vocab, *, transform=jax.value_and_grad):
  """Compiled temporary bytes of ``transform(fn)`` with respect to hidden,
  weight and bias, for a language-model head ``fn(hidden [tokens, dim],
  weight [dim, vocab], bias [vocab], labels [tokens])`` in float32 (compiled
  on shapes, not run)."""
  f32 = jax.numpy.float32
  args = (
    jax.ShapeDtypeStruct((tokens, dim), f32),
    jax.ShapeDtypeStruct((dim, vocab), f32),
    jax.ShapeDtypeStruct((vocab,), f32),
    jax.ShapeDtypeStruct((tokens,), jax.numpy.int32),
  )
  step = jax.jit(transform(fn, argnums=(0, 1, 2)))
  return step.lower(*args).compile().memory_analysis().temp_size_in_bytes
