"""Lamina: self-hosted LLM infrastructure — documents in, grounded answers out."""

from lamina.errors import LaminaError

__version__ = "0.1.0"
__all__ = ["LaminaError", "__version__"]
