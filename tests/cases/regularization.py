"""Registry entries for jaxloss.regularization.

The regularisers take pytrees of parameters and return one scalar (no batch
axis, no where/weights/reduction), so they do not fit LossCase: they are
HELPERS, tested directly in tests/test_regularization.py.
"""

CASES = []

HELPERS = {
  "l1_regularization",
  "l2_regularization",
  "elastic_net_regularization",
}
