"""Admin: pairing and device removal, from the CLI or through the running hub's admin socket."""
