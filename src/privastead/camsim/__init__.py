"""The camera simulator: an RTSP server of generated scenes, for the demo, tests and benchmarks."""
