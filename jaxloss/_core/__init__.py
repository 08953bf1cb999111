"""Private machinery shared by the loss families (docs/design.md, Layout)."""
