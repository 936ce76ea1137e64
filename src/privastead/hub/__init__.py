"""The hub: runs cameras, detects events, records, encrypts and delivers to clients."""
