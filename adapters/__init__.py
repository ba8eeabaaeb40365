"""Adapters: one module per outside system.

They speak only the project's own types (``adapters.progress``) and errors (``adapters.errors``);
vendor exceptions are translated at this boundary. Nothing here imports ``bot`` or ``handlers``.
"""
