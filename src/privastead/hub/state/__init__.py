"""State: the hub's data directory, its MLS groups and the registry of paired devices."""
