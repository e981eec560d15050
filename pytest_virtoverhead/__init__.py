"""pytest-virtoverhead: measure what containers and virtual machines cost your code."""

__version__ = "0.1.0"
