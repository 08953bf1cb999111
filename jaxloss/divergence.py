"""divergence losses (being written)."""

__all__ = []
