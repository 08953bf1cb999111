"""Shared test set-up: strict numerics and the registry of every public loss."""

import importlib
import pkgutil

import jax

# Catch silent broadcasting between predictions and targets.
jax.config.update("jax_numpy_rank_promotion", "raise")

from tests import cases as _cases  # noqa: E402


def _case_modules():
  for info in pkgutil.iter_modules(_cases.__path__):
    if not info.name.startswith("_"):
      yield importlib.import_module(f"tests.cases.{info.name}")


def all_cases():
  """Every LossCase in tests/cases/*.py (each module's ``CASES`` list)."""
  return [case for module in _case_modules() for case in module.CASES]


def public_helpers():
  """Public callables that are not losses (each module's ``HELPERS`` set)."""
  return {"reduce", "checked", "loss"}.union(
    *(getattr(module, "HELPERS", set()) for module in _case_modules())
  )
