"""Mixture-of-experts routing: the router's auxiliary losses, Switch
Transformer's load-balancing loss (top-k dispatch) and ST-MoE's router
z-loss.

Both return one scalar and take ``where`` only: a masked (padding) token is
removed from every count and mean. Leading axes of the inputs are groups
(flaxformer's ``[groups, tokens_per_group, experts]``): the load-balancing
loss is computed per group and averaged over the groups, the z-loss is a
mean over every kept token. Their sharded versions, in
:mod:`jaxloss.distributed`, ``psum`` the token sums over the mesh axis that
the tokens are sharded over, so that they equal the loss of the global
batch.
"""

from jaxloss.routing.router import load_balancing_loss, router_z_loss

__all__ = [
  "load_balancing_loss",
  "router_z_loss",
]
