"""regression losses (being written)."""

__all__ = []
