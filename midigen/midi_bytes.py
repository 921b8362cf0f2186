"""The two pieces of the Standard MIDI File byte format that midigen's byte-level readers and
writers share: variable-length numbers (delta times, meta lengths) and how many data bytes
each channel message carries (for walking running status)."""

from __future__ import annotations

DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}  # by status & 0xF0


def read_vlq(body: bytes, i: int) -> tuple[int, int]:
    """The variable-length number at body[i] and the index after it; IndexError when the
    bytes end inside it (a file cut short)."""
    value = 0
    while True:
        byte = body[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, i


def vlq(value: int) -> bytes:
    """`value` (>= 0) as a variable-length number."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))
