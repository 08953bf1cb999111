"""ranking losses (being written)."""

__all__ = []
