"""Sequence losses (being built; see DESIGN.md section 4)."""

__all__ = []
