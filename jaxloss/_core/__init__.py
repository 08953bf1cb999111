"""Private machinery shared by every loss family."""

from jaxloss._core import checks, numerics, reduction, value_checks

__all__ = ["checks", "numerics", "reduction", "value_checks"]
