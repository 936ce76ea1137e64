"""The client's local web UI (`privastead-app ui`): an aiohttp server on 127.0.0.1 only.

Decryption stays in the client process; the browser reads decrypted data from this server
alone, through the narrow :class:`~privastead.client.ui.source.UiSource` interface.
"""
