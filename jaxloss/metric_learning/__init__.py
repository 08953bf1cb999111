"""Metric-learning losses: triplets, pairs, proxies, angular margins, class
centres, sentence embeddings.

Every loss returns per-example values and reduces through
:func:`jaxloss.reduce` (``where``, ``weights``, ``reduction``). In-batch losses
(mining, N-pair, GE2E, uniformity) read a ``[batch]`` ``where`` as removing
the example both as an anchor and as a candidate, so ``where`` equals slicing.
The mining losses, :func:`multi_similarity_loss` and
:func:`jaxloss.infonce_loss` take a cross-batch memory
(:func:`cross_batch_memory`, pure state) as extra references.
``triplet_margin_loss`` keeps ``optax.losses``' positional signature, defaults
and values.
"""

from jaxloss.metric_learning.angular import (
  large_margin_softmax_loss,
  sphereface_loss,
)
from jaxloss.metric_learning.average_precision import fast_ap_loss
from jaxloss.metric_learning.centers import (
  center_loss,
  te2e_loss,
  update_centers,
)
from jaxloss.metric_learning.margins import (
  arcface_loss,
  cosface_loss,
  sub_center_arcface_loss,
)
from jaxloss.metric_learning.memory import (
  CrossBatchMemory as CrossBatchMemory,
)
from jaxloss.metric_learning.memory import (
  cross_batch_memory,
  update_cross_batch_memory,
)
from jaxloss.metric_learning.mining import (
  batch_all_triplet_loss,
  batch_hard_triplet_loss,
  semi_hard_triplet_loss,
)
from jaxloss.metric_learning.pair_weighting import (
  circle_loss,
  generalized_lifted_structure_loss,
  lifted_structure_loss,
  multi_similarity_loss,
  tuplet_margin_loss,
)
from jaxloss.metric_learning.pairs import (
  alignment_loss,
  contrastive_loss,
  npair_loss,
  uniformity_loss,
)
from jaxloss.metric_learning.proxies import (
  ge2e_loss,
  proxy_anchor_loss,
  proxy_nca_loss,
  soft_triple_loss,
)
from jaxloss.metric_learning.sentence import (
  angle_loss,
  cosent_loss,
  margin_mse_loss,
  matryoshka,
)
from jaxloss.metric_learning.triplet import angular_loss, triplet_margin_loss

__all__ = [
  "alignment_loss",
  "angle_loss",
  "angular_loss",
  "arcface_loss",
  "batch_all_triplet_loss",
  "batch_hard_triplet_loss",
  "center_loss",
  "circle_loss",
  "contrastive_loss",
  "cosent_loss",
  "cosface_loss",
  "cross_batch_memory",
  "fast_ap_loss",
  "ge2e_loss",
  "generalized_lifted_structure_loss",
  "large_margin_softmax_loss",
  "lifted_structure_loss",
  "margin_mse_loss",
  "matryoshka",
  "multi_similarity_loss",
  "npair_loss",
  "proxy_anchor_loss",
  "proxy_nca_loss",
  "semi_hard_triplet_loss",
  "soft_triple_loss",
  "sphereface_loss",
  "sub_center_arcface_loss",
  "te2e_loss",
  "triplet_margin_loss",
  "tuplet_margin_loss",
  "uniformity_loss",
  "update_centers",
  "update_cross_batch_memory",
]
