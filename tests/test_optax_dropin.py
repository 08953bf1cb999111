"""`import jaxloss as losses` replaces `optax.losses`: same names, same signatures.

Values are compared with optax in each family's tests; this file checks the
surface: every optax name exists with optax's positional parameters and
defaults, and optax's keyword-only parameters keep their defaults.
"""

import inspect

import optax
import pytest

import jaxloss

# optax names whose family has not landed yet, with the issue that brings it.
# This set may only shrink: the test below fails if a listed name appears.
PENDING: dict = {}

OPTAX_NAMES = sorted(n for n in dir(optax.losses) if not n.startswith("_")
                     and callable(getattr(optax.losses, n)))


def test_pending_list_is_exact():
  present = {n for n in OPTAX_NAMES if hasattr(jaxloss, n)}
  assert set(OPTAX_NAMES) - present == set(PENDING)


def _parameters(fn):
  return inspect.signature(fn).parameters.values()


@pytest.mark.parametrize("name", [n for n in OPTAX_NAMES if n not in PENDING])
def test_same_signature_as_optax(name):
  ours, theirs = getattr(jaxloss, name), getattr(optax.losses, name)
  positional = [(p.name, p.default) for p in _parameters(theirs)
                if p.kind is p.POSITIONAL_OR_KEYWORD]
  ours_positional = [(p.name, p.default) for p in _parameters(ours)
                     if p.kind is p.POSITIONAL_OR_KEYWORD]
  assert ours_positional == positional
  ours_params = inspect.signature(ours).parameters
  for p in _parameters(theirs):
    assert p.name in ours_params, f"{name}: missing parameter {p.name}"
    assert ours_params[p.name].kind == p.kind, f"{name}: kind of {p.name}"
    assert ours_params[p.name].default == p.default, f"{name}: default of {p.name}"
  theirs_names = {p.name for p in _parameters(theirs)}
  extras = [p for p in _parameters(ours) if p.name not in theirs_names]
  assert all(p.kind is p.KEYWORD_ONLY for p in extras), f"{name}: extras {extras}"
