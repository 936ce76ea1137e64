"""ONVIF for ``privastead-hub discover``: WS-Discovery probes (``discovery``), the device and
media services (``client``), and the SOAP they share (``soap``)."""
