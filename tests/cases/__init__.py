"""Conformance registry: one module per family, each with a ``CASES`` list of
:class:`jaxloss.testing.LossCase`. tests/test_properties.py runs every shared
property over all of them."""
