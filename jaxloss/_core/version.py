"""The version of jaxloss: the one place it is written (pyproject.toml reads
it as ``[tool.setuptools.dynamic]``; the package metadata then carries it)."""

__version__ = "0.2.0"
