"""End-to-end encryption: a typed facade over the MLS core in ``privastead._native``."""
