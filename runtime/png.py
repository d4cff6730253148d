"""A small PNG reader (stdlib zlib + numpy) so the runtime can read the client's images without OpenCV.

Reads 8-bit, non-interlaced PNGs with colour type RGB (2) — the client's format — and refuses everything else
by name (grayscale, alpha, palette, 16-bit, interlaced, corrupt, truncated).
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from labelmend.errors import DataError

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Decode an 8-bit RGB PNG file into an (H, W, 3) uint8 array; raises DataError naming the file otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if not data.startswith(_SIGNATURE):
        raise DataError(f"{path}: not a PNG file" + (" (0 bytes)" if not data else ""))
    pos, header, idat = len(_SIGNATURE), None, []
    while True:
        if pos + 8 > len(data):
            raise DataError(f"{path}: truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise DataError(f"{path}: truncated PNG ({kind.decode('latin-1')} chunk cut short)")
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]:
            raise DataError(f"{path}: corrupt PNG (CRC mismatch in {kind.decode('latin-1')} chunk)")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise DataError(f"{path}: corrupt PNG (no IHDR chunk)")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour != 2:
        raise DataError(f"{path}: {depth}-bit {_COLOUR_TYPES.get(colour, 'unknown')} PNG; expected 8-bit RGB")
    if interlace:
        raise DataError(f"{path}: interlaced PNG is not supported; save it non-interlaced")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise DataError(f"{path}: corrupt PNG image data ({exc})") from None
    stride = width * 3
    if len(raw) != height * (stride + 1):
        raise DataError(f"{path}: corrupt PNG (image data has {len(raw)} bytes, expected {height * (stride + 1)})")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 2:
            cur = (line + prev) & 0xFF
        elif kind in (1, 3, 4):  # these depend on the reconstructed pixel to the left: go pixel by pixel
            cur = np.zeros(stride, dtype=np.int32)
            for x in range(stride):
                a = cur[x - 3] if x >= 3 else 0
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + prev[x]) >> 1
                else:
                    pred = int(_paeth(np.int32(a), prev[x], prev[x - 3] if x >= 3 else np.int32(0)))
                cur[x] = (line[x] + pred) & 0xFF
        else:
            raise DataError(f"{path}: corrupt PNG (unknown filter type {kind} on row {y})")
        out[y] = cur
        prev = cur
    return out.astype(np.uint8).reshape(height, width, 3)
