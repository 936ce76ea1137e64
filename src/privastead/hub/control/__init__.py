"""Control: what clients ask in their control groups (resends, re-adds, probes, livestreams)."""
