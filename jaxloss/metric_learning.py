"""metric learning losses (being written)."""

__all__ = []
