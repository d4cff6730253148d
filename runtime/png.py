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
            if length != 13:
                raise DataError(f"{path}: corrupt PNG (IHDR chunk has {length} bytes, expected 13)")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise DataError(f"{path}: corrupt PNG (no IHDR chunk)")
    width, height, depth, colour, compression, filtering, interlace = header
    if compression or filtering:
        raise DataError(f"{path}: corrupt PNG (unknown compression method {compression} or filter method {filtering})")
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
    # Unfilter row by row on Python ints (filters 1, 3 and 4 depend on the reconstructed byte to the left, so they
    # cannot be vectorised along a row; plain ints are ~50x faster than numpy scalars here).
    out = bytearray(height * stride)
    prev = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1:start + 1 + stride]
        if kind == 0:
            cur = bytearray(line)
        elif kind == 1:
            cur = bytearray(line)
            for x in range(3, stride):
                cur[x] = (cur[x] + cur[x - 3]) & 0xFF
        elif kind == 2:
            cur = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            cur = bytearray(line)
            for x in range(stride):
                cur[x] = (cur[x] + (((cur[x - 3] if x >= 3 else 0) + prev[x]) >> 1)) & 0xFF
        elif kind == 4:
            cur = bytearray(line)
            for x in range(stride):
                a = cur[x - 3] if x >= 3 else 0
                b = prev[x]
                c = prev[x - 3] if x >= 3 else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[x] = (cur[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        else:
            raise DataError(f"{path}: corrupt PNG (unknown filter type {kind} on row {y})")
        out[y * stride:(y + 1) * stride] = cur
        prev = cur
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(height, width, 3).copy()


def encode_png(rgb: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 RGB array as PNG bytes (8-bit RGB, no filtering): what `labelmend review` serves."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width = rgb.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return _SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes())) + chunk(b"IEND", b"")
