"""jaxloss: loss functions for JAX and Flax.

Every loss is a pure function (jit-able, vmap-able, differentiable) with one
reduction contract (:func:`jaxloss.reduce`) and trace-time shape checks. The
public API is flat: ``import jaxloss as jl; jl.<loss>``.
"""

from jaxloss import classification
from jaxloss._core.reduction import REDUCTIONS, reduce
from jaxloss._core.value_checks import checked
from jaxloss.classification import *  # noqa: F401,F403

__version__ = "0.1.0"

_FAMILIES = (classification,)

__all__ = sorted(
    ["REDUCTIONS", "checked", "reduce", "classification"]
    + [name for family in _FAMILIES for name in family.__all__])
