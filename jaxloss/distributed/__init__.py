r"""Losses over arrays sharded across devices: contrastive losses over a
sharded batch, and a language model's cross-entropy and log-probabilities
over a sharded vocabulary.

* :func:`clip_loss`, :func:`siglip_loss`, :func:`infonce_loss`,
  :func:`supervised_contrastive_loss`, :func:`multiple_negatives_ranking_loss`,
  :func:`ntxent`:
  the batch sharded over ``axis_name`` (below).
* :func:`linear_cross_entropy`, :func:`linear_log_probs`
  (:mod:`jaxloss.distributed.linear`): the output projection's vocabulary
  sharded over ``vocab_axis`` (tensor parallelism) and the tokens over
  ``token_axis``; per chunk of tokens a ``pmax`` and a ``psum`` of a few
  ``[chunk]`` vectors, never the logits or the weight (Megatron-LM's
  vocabulary-parallel cross-entropy, fused and chunked).
* :func:`grpo_loss` (:mod:`jaxloss.distributed.policy`): the completions
  sharded over ``axis_name``; the token and completion counts of its
  ``"mean"`` summed over it.
* :func:`kto_loss` (:mod:`jaxloss.distributed.preference`): KTO with its
  reference point's mean over the global batch (a ``psum`` of sums and
  counts).
* :func:`barlow_twins_loss`, :func:`vicreg_loss`
  (:mod:`jaxloss.distributed.self_supervised`): the batch means, variances,
  cross-correlation and covariance matrices ``psum``-ed over ``axis_name``.
* :func:`dino_loss`, :func:`swav_loss` (:mod:`jaxloss.distributed.clustering`):
  DINO with its centre's batch mean, SwAV with Sinkhorn's sums over the
  examples, over the global batch (``psum`` over ``axis_name``).
* :func:`load_balancing_loss`, :func:`router_z_loss`
  (:mod:`jaxloss.distributed.routing`): a mixture-of-experts router's
  auxiliary losses with the tokens sharded over ``axis_name``; the dispatch
  counts, probability sums and token counts ``psum``-ed.
* :func:`shard` wraps the batch-sharded (contrastive, self-supervised) and
  vocabulary-parallel losses in ``shard_map`` for global arrays
  (per-argument layouts: DINO's views axis first and its replicated
  centre).

**Contrastive losses.**

Each loss here is called inside :func:`jax.shard_map` (or :func:`jax.pmap`)
with every device along ``axis_name`` holding its slice of the global batch.
It returns the loss of the **global** batch, replicated on every device: the
single-device loss of :mod:`jaxloss.contrastive` (or
:func:`jaxloss.multiple_negatives_ranking_loss`) on the concatenation of the
slices in device order, in value and in gradient (embeddings, temperature,
scale and bias alike, with ``jax.grad`` taken outside ``shard_map``, or
inside it with ``check_vma`` on). :func:`shard` wraps a loss in
``shard_map`` for callers that hold globally sharded arrays.

Two strategies give the same values:

* ``strategy="ring"`` (default): the other side's embeddings travel round a
  ring of devices in ``D − 1`` ``jax.lax.ppermute`` steps; each block that
  arrives is folded into an online log-sum-exp ``chunk_size`` columns at a
  time, and a custom VJP re-runs the ring in the backward pass, carrying each
  block's gradient back to its owner (Inf-CL, Wang et al. 2024). Temporary
  memory per device is O(b · chunk + b · dim) for a local batch ``b``,
  whatever the number of devices ``D``. Reverse-mode differentiation only.
* ``strategy="all_gather"``: ``jax.lax.all_gather(tiled=True)`` of the other
  side; ``b × D·b`` logits per device (chunked if ``chunk_size`` is given).

Every array argument (embeddings, ``labels``, ``negatives``, ``where``,
``weights``) is the local slice of a global array along axis 0; scalar
hyper-parameters are the same on every device (learned ones get the gradient
of the global loss). ``reduction`` defaults to ``"mean"``; ``"sum"``,
``"mean"`` and ``"batchmean"`` reduce over the global batch and are
replicated, ``"none"`` returns this device's slice of the per-example values.

>>> import jax, jax.numpy as jnp
>>> import jaxloss, jaxloss.distributed as jd
>>> mesh = jax.make_mesh((1,), ("data",))  # one device here; any number works
>>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]])
>>> xs = jax.device_put(x, jax.NamedSharding(mesh, jax.P("data")))
>>> loss = jax.jit(jax.shard_map(
...     lambda x, y: jd.clip_loss(x, y, axis_name="data", temperature=0.5),
...     mesh=mesh, in_specs=jax.P("data"), out_specs=jax.P()))
>>> print(f"{loss(xs, xs):.6f}")
0.713195
>>> print(f"{jaxloss.clip_loss(x, x, temperature=0.5, reduction='mean'):.6f}")
0.713195

References:
  Wang et al., `Breaking the Memory Barrier: Near Infinite Batch Size Scaling
  for Contrastive Loss <https://arxiv.org/abs/2410.17243>`_, 2024 (Inf-CL);
  Zhai, Mustafa, Kolesnikov and Beyer, `Sigmoid Loss for Language Image
  Pre-Training <https://arxiv.org/abs/2303.15343>`_, 2023 (chunked SigLIP).
"""

from jaxloss.distributed.clustering import dino_loss, swav_loss
from jaxloss.distributed.contrastive import (
  clip_loss,
  infonce_loss,
  multiple_negatives_ranking_loss,
  ntxent,
  siglip_loss,
  supervised_contrastive_loss,
)
from jaxloss.distributed.linear import linear_cross_entropy, linear_log_probs
from jaxloss.distributed.policy import grpo_loss
from jaxloss.distributed.preference import kto_loss
from jaxloss.distributed.routing import load_balancing_loss, router_z_loss
from jaxloss.distributed.self_supervised import barlow_twins_loss, vicreg_loss
from jaxloss.distributed.shard import shard

__all__ = [
  "barlow_twins_loss",
  "clip_loss",
  "dino_loss",
  "grpo_loss",
  "infonce_loss",
  "kto_loss",
  "linear_cross_entropy",
  "linear_log_probs",
  "load_balancing_loss",
  "multiple_negatives_ranking_loss",
  "ntxent",
  "router_z_loss",
  "shard",
  "siglip_loss",
  "supervised_contrastive_loss",
  "swav_loss",
  "vicreg_loss",
]
