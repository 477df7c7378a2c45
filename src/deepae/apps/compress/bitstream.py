"""The ``.dae`` file format of compressed images (specified in ``docs/format.md``).

::

    offset  size  field
    0       3     magic b"DAE"
    3       1     format version (1)
    4       4     model fingerprint (first 4 bytes of the codec's SHA-256 fingerprint)
    8       2     image height   (uint16, big-endian, >= 1)
    10      2     image width    (uint16, >= 1)
    12      1     image channels (1 or 3)
    13      2     latent height  (uint16, >= 1)
    15      2     latent width   (uint16, >= 1)
    17      2     latent channels (uint16, >= 1)
    19      4     payload length L in bytes (uint32)
    23      L     payload: the range coder's 32-bit words, big-endian, trailing zero bytes
                  dropped
    23 + L  4     CRC-32 (zlib) of bytes 0 .. 23 + L

The reader checks, in this order: magic, version, every length against the bytes left,
the checksum, then each field's range; any failure raises `BitstreamError` saying which.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from deepae.exceptions import BitstreamError

__all__ = ["MAGIC", "VERSION", "HEADER_BYTES", "OVERHEAD_BYTES", "Header", "pack", "unpack"]

MAGIC = b"DAE"
VERSION = 1
_HEAD = struct.Struct(">3sB4sHHBHHHI")
HEADER_BYTES = _HEAD.size  # 23
OVERHEAD_BYTES = HEADER_BYTES + 4  # with the CRC: what every file costs beyond its payload
_MAX16 = 0xFFFF


@dataclass(frozen=True)
class Header:
    """The fields of a ``.dae`` file before its payload."""

    fingerprint: bytes  # 4 bytes
    height: int
    width: int
    channels: int
    latent_shape: tuple[int, int, int]  # (height, width, channels)


def pack(header: Header, payload: bytes) -> bytes:
    """The bytes of a ``.dae`` file: header, payload and checksum."""
    h, w, c = header.height, header.width, header.channels
    if not (1 <= h <= _MAX16 and 1 <= w <= _MAX16):
        raise ValueError(f"Expected an image of 1 to {_MAX16} pixels on each side; received "
                         f"{h}x{w}.")
    if c not in (1, 3):
        raise ValueError(f"Expected 1 or 3 channels; received {c}.")
    if len(header.fingerprint) != 4:
        raise ValueError(f"Expected a 4-byte `fingerprint`; received {len(header.fingerprint)} "
                         f"bytes ({header.fingerprint!r}).")
    if len(header.latent_shape) != 3 or not all(1 <= s <= _MAX16 for s in header.latent_shape):
        raise ValueError(f"Expected `latent_shape` as 3 sizes from 1 to {_MAX16}; received "
                         f"{header.latent_shape!r}.")
    head = _HEAD.pack(MAGIC, VERSION, header.fingerprint, h, w, c, *header.latent_shape,
                      len(payload))
    body = head + payload
    return body + struct.pack(">I", zlib.crc32(body))


def unpack(data) -> tuple[Header, bytes]:
    """Parse and check a ``.dae`` file; returns its header and payload.

    Raises
    ------
    BitstreamError
        If `data` is not a ``.dae`` file, is of an unknown format version, is truncated,
        has bytes after its checksum, fails its checksum, or has fields out of range.
    TypeError
        If `data` is not bytes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"Expected `data` as bytes (the contents of a .dae file); received "
                        f"{type(data).__name__}.")
    data = bytes(data)
    if len(data) < len(MAGIC) or data[:3] != MAGIC:
        raise BitstreamError(f"Not a deepae compressed image: expected the magic bytes "
                             f"{MAGIC!r}, found {data[:3]!r}.")
    if len(data) < 4:
        raise BitstreamError(f"Truncated .dae file: {len(data)} bytes, the header alone takes "
                             f"{HEADER_BYTES}.")
    if data[3] != VERSION:
        raise BitstreamError(f"Unknown .dae format version {data[3]}; this deepae reads versions "
                             f"{VERSION} and 2 (effort='best'). Upgrade deepae to read newer "
                             "files.")
    if len(data) < OVERHEAD_BYTES:
        raise BitstreamError(f"Truncated .dae file: {len(data)} bytes, fewer than the "
                             f"{OVERHEAD_BYTES} of its header and checksum.")
    _, _, fp, h, w, c, lh, lw, lc, n = _HEAD.unpack_from(data)
    left = len(data) - HEADER_BYTES - 4
    if n > left:
        raise BitstreamError(f"Truncated .dae file: the header announces a {n}-byte payload, "
                             f"{left} bytes are left before the checksum.")
    if n < left:
        raise BitstreamError(f"Corrupted .dae file: {left - n} bytes after the {n}-byte payload "
                             "and its checksum.")
    crc = struct.unpack_from(">I", data, HEADER_BYTES + n)[0]
    if zlib.crc32(data[:HEADER_BYTES + n]) != crc:
        raise BitstreamError("Corrupted .dae file: the CRC-32 checksum does not match the "
                             "contents.")
    if h < 1 or w < 1 or c not in (1, 3) or min(lh, lw, lc) < 1:
        raise BitstreamError(f"Corrupted .dae file: invalid shape fields (image {h}x{w}x{c}, "
                             f"latent {lh}x{lw}x{lc}).")
    return Header(fp, h, w, c, (lh, lw, lc)), data[HEADER_BYTES:HEADER_BYTES + n]
