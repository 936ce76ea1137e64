"""Privastead: end-to-end encrypted home security cameras.

Layers, lowest first (a layer never imports a higher one):

- ``privastead.errors``, ``privastead.clock``, ``privastead.configfile``, ``privastead.logs``
- ``privastead.crypto`` (facade over the Rust extension ``privastead._native``),
  ``privastead.media`` (ingest, decode, kernels, recorder)
- ``privastead.relay`` (the untrusted relay server and its HTTP client)
- ``privastead.hub``, ``privastead.client``, ``privastead.camsim``
- ``privastead.cli`` (one module per subcommand)
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
