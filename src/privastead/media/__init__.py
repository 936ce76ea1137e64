"""Video: RTSP ingest, decoding, motion kernels, event detection and stream-copy recording."""
