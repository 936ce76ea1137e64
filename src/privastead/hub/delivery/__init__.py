"""Delivery: camera events to MLS messages on per-group workers, the outbox and its upload."""
