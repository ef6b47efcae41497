"""Reading prometheus_client's per-process .db files without trusting them.

prometheus_client's own reader assumes a complete file. A worker creates its
file with open() and only then sizes it and writes the header, so a scrape can
meet a file of 0 bytes, or of 64 KiB of zeros (prometheus_client issue #1199:
struct.error, and a 500 for the whole scrape). Those states mean "nothing
recorded yet" and read as no values. Anything else that does not add up (a
header claiming more bytes than the file holds, an entry running past it, a
key that is not the library's JSON) raises CorruptFile, for the caller to decide.

The writer appends an entry before it raises the header's `used` mark, so
everything below the mark read once at the start is complete: one read of the
header and one of the body is a consistent snapshot of a file still growing.
"""
import json
import mmap
import struct

HEADER = 8
_INT = struct.Struct("i")
_TWO_DOUBLES = struct.Struct("dd")


class CorruptFile(Exception):
    """The file's bytes are not a prometheus_client metrics file."""


def read_values(path: str) -> list[tuple[str, float, float]]:
    """(key, value, timestamp) for every entry; [] for a file still being created."""
    with open(path, "rb") as handle:
        data = handle.read(mmap.PAGESIZE)
        if len(data) < HEADER:
            return []
        used = _INT.unpack_from(data, 0)[0]
        if used == 0:
            return []
        if used < HEADER:
            raise CorruptFile(f"header claims {used} bytes used")
        if used > len(data):
            data += handle.read(used - len(data))
    if used > len(data):
        raise CorruptFile(f"header claims {used} bytes used, the file holds {len(data)}")
    return _entries(data, used)


def _entries(data: bytes, used: int) -> list[tuple[str, float, float]]:
    entries, pos = [], HEADER
    while pos < used:
        if pos + 4 > used:
            raise CorruptFile(f"entry header at byte {pos} runs past byte {used}")
        length = _INT.unpack_from(data, pos)[0]
        padded = length + (8 - (length + 4) % 8)
        end = pos + 4 + padded + _TWO_DOUBLES.size
        if length <= 0 or end > used:
            raise CorruptFile(f"entry at byte {pos} of length {length} runs past byte {used}")
        key = _valid_key(data[pos + 4:pos + 4 + length], pos)
        value, timestamp = _TWO_DOUBLES.unpack_from(data, pos + 4 + padded)
        entries.append((key, value, timestamp))
        pos = end
    return entries


def _valid_key(raw: bytes, pos: int) -> str:
    """The library's key: JSON [metric name, sample name, {labels}, help]."""
    try:
        key = raw.decode("utf-8")
        metric, sample, labels, help_text = json.loads(key)
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        raise CorruptFile(f"entry at byte {pos} has no valid key") from exc
    if not (isinstance(metric, str) and isinstance(sample, str) and isinstance(labels, dict) and isinstance(help_text, str)
            and all(isinstance(v, str) for v in labels.values())):
        raise CorruptFile(f"entry at byte {pos} has a malformed key")
    return key
