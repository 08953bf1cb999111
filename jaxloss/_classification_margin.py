"""Margin, perceptron and sparsemax classification losses.

Public through :mod:`jaxloss.classification` (kept in its own file so that each
file stays short).
"""

__all__ = []
