"""Recording: event clips cut from the ring, thumbnails and sidecars (stream copy, no re-encode)."""
