"""The relay: untrusted store-and-forward of ciphertext (server) and its HTTP client."""
