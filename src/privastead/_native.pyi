"""Type stubs for the Rust extension ``privastead._native`` (checked by mypy.stubtest)."""

__all__ = ["core_version"]

def core_version() -> str: ...
