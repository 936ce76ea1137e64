"""Capture: each camera's RTSP ingest, pre-roll ring and live feed, supervised by the runner."""
