"""pytest-virtoverhead: measure what containers and virtual machines cost your code."""

__version__ = "0.1.0"

from .guest.work import record_work

__all__ = ["record_work", "__version__"]
