"""QR codes for the pairing code: terminal text and PNG with ``segno``, PNG decoding back.

The QR holds exactly the typed code's text (``privastead:GROUP-GROUP-...``): uppercase Crockford
base32 plus ``-`` and ``:`` all fit QR's alphanumeric mode, so the QR stays small, and a scanned
code goes through the same checks as a typed one.

Decoding a PNG (``privastead-app pair --qr FILE``) uses ``zxing-cpp`` (a wheel with no system
dependencies) on pixels read by ``pypng`` (pure Python). This is far lighter than OpenCV's QR
detector and needs no Debian package, unlike zbar. Both are imported lazily so that the rest of
the protocol package does not need them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from privastead.errors import DecodeError
from privastead.protocol.pairing_code import PairingCode

MAX_PNG_BYTES = 20 << 20


def _qr(code: PairingCode) -> Any:
    import segno

    # Uppercase so segno picks alphanumeric mode; error level M survives a smudged screen.
    return segno.make_qr(code.to_text().upper(), error="m")


def qr_terminal(code: PairingCode) -> str:
    """The QR as Unicode half blocks, for printing in a terminal."""
    out = io.StringIO()
    _qr(code).terminal(out=out, compact=True, border=2)
    return out.getvalue()


def save_qr_png(code: PairingCode, path: Path, *, scale: int = 6) -> None:
    """Write the QR as a PNG (mode 0600: it holds the pairing secret)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    _qr(code).save(str(path), kind="png", scale=scale, border=4)


def decode_qr_png(path: Path) -> PairingCode:
    """Find the pairing QR in a PNG (a screenshot or photo) and parse it.

    Raises ``DecodeError`` if the file is not a readable PNG, holds no QR, or the QR is not a
    valid pairing code.
    """
    import numpy as np
    import png
    import zxingcpp

    try:
        data = path.read_bytes()
    except OSError as e:
        raise DecodeError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > MAX_PNG_BYTES:
        raise DecodeError(f"{path} is larger than {MAX_PNG_BYTES >> 20} MiB")
    try:
        width, height, rows, _info = png.Reader(bytes=data).asRGBA8()
        pixels = np.vstack([np.frombuffer(bytes(row), dtype=np.uint8) for row in rows])
    except (png.Error, ValueError, EOFError) as e:
        raise DecodeError(f"{path} is not a readable PNG: {e}") from None
    rgba = pixels.reshape(height, width, 4).astype(np.float32)
    # Composite onto white (transparent PNGs), then to grey for the decoder.
    alpha = rgba[..., 3:4] / 255.0
    rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    grey = np.ascontiguousarray(rgb.mean(axis=2).astype(np.uint8))
    results = zxingcpp.read_barcodes(
        grey, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    if not results:
        raise DecodeError(f"no QR code found in {path}")
    errors = []
    for result in results:
        try:
            return PairingCode.parse(result.text)
        except DecodeError as e:
            errors.append(str(e))
    raise DecodeError(f"the QR code in {path} is not a Privastead pairing code ({errors[0]})")


__all__ = ["decode_qr_png", "qr_terminal", "save_qr_png"]
