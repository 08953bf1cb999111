"""Self-supervised losses: BYOL and SimSiam (a prediction against a target
view whose gradient is stopped), Barlow Twins and VICReg (batch statistics
of two views' embeddings), DINOv2's KoLeo entropy regulariser, and DINO
and SwAV (a softmax over prototypes against targets from another view:
DINO's centred teacher, SwAV's Sinkhorn-Knopp codes).

The losses whose value is a batch statistic (Barlow Twins, VICReg, KoLeo)
return one scalar and take ``where`` only: a masked example is removed from
the batch statistics. Their sharded versions, in :mod:`jaxloss.distributed`,
combine the statistics over the data axis so that they equal the loss of the
global batch. BYOL and SimSiam return per-example values that reduce
through :func:`jaxloss.reduce`, and so do DINO and SwAV, whose targets use
a batch statistic (DINO's centre update, Sinkhorn's sums over the batch)
that ``where`` restricts to the kept examples; DINO also returns its
updated centre.
"""

from jaxloss.self_supervised.clustering import dino_loss, swav_loss
from jaxloss.self_supervised.entropy import koleo_loss
from jaxloss.self_supervised.redundancy import barlow_twins_loss, vicreg_loss
from jaxloss.self_supervised.similarity import byol_loss, simsiam_loss

__all__ = [
  "barlow_twins_loss",
  "byol_loss",
  "dino_loss",
  "koleo_loss",
  "simsiam_loss",
  "swav_loss",
  "vicreg_loss",
]
