"""jaxloss: loss functions for JAX and Flax.

Every loss is a pure function (jit-able, vmap-able, differentiable) with one
reduction contract (:func:`jaxloss.reduce`) and trace-time shape checks. The
public API is flat: ``import jaxloss as jl; jl.<loss>``. Sharded versions of
the contrastive losses live in :mod:`jaxloss.distributed`.
"""

from jaxloss import (
  classification,
  contrastive,
  detection,
  distributed,
  divergence,
  generative,
  image,
  metric_learning,
  nn,
  preference,
  ranking,
  regression,
  regularization,
  rl,
  segmentation,
  sequence,
  train,
)
from jaxloss._core.reduction import REDUCTIONS, reduce
from jaxloss._core.value_checks import checked
from jaxloss.classification import *  # noqa: F403
from jaxloss.contrastive import *  # noqa: F403
from jaxloss.detection import *  # noqa: F403
from jaxloss.divergence import *  # noqa: F403
from jaxloss.generative import *  # noqa: F403
from jaxloss.image import *  # noqa: F403
from jaxloss.metric_learning import *  # noqa: F403
from jaxloss.preference import *  # noqa: F403
from jaxloss.ranking import *  # noqa: F403
from jaxloss.regression import *  # noqa: F403
from jaxloss.regularization import *  # noqa: F403
from jaxloss.rl import *  # noqa: F403
from jaxloss.segmentation import *  # noqa: F403
from jaxloss.sequence import *  # noqa: F403

__version__ = "0.1.0"

_FAMILIES = (
  classification,
  contrastive,
  detection,
  divergence,
  generative,
  image,
  metric_learning,
  preference,
  ranking,
  regression,
  regularization,
  rl,
  segmentation,
  sequence,
)

__all__ = sorted(
  ["REDUCTIONS", "checked", "reduce"]
  + [name for family in _FAMILIES for name in family.__all__]
)
