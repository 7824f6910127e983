"""zoo: a plugin-based, multi-architecture LLM model zoo on Modular's MAX."""

__version__ = "0.1.0"
