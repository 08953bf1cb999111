"""Shared test set-up: strict numerics and the registry of every public loss."""

import importlib
import pkgutil

import jax

# Catch silent broadcasting between predictions and targets.
jax.config.update("jax_numpy_rank_promotion", "raise")

from tests import cases as _cases  # noqa: E402


def all_cases():
  """Every LossCase in tests/cases/*.py (each module's CASES list)."""
  collected = []
  for info in pkgutil.iter_modules(_cases.__path__):
    if info.name.startswith("_"):
      continue
    module = importlib.import_module(f"tests.cases.{info.name}")
    collected.extend(module.CASES)
  return collected
