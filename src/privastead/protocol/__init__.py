"""The hub ↔ client protocol: envelope, messages, sequence tracking and the pairing code.

A lower layer shared by ``privastead.hub`` and ``privastead.client``: it imports only
``privastead.errors``, ``privastead.clock`` and the standard library (plus ``segno`` and
``zxingcpp`` lazily, for QR codes). See docs/design/protocol.md.
"""
