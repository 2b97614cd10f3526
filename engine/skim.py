"""Read a binary GraphDef's structure without reading its weights.

A frozen graph is mostly Const tensors: 98 MB of a 100 MB ResNet-50. Inspect needs
names, ops, inputs and small attrs only. We map the file and walk the protobuf wire
format, copying each NodeDef minus its large attr entries, then parse that small
GraphDef with the regular class. Pages holding weights are never touched, so the
file is not read, only mapped.
"""

from __future__ import annotations

import mmap
from pathlib import Path

LARGE_ATTR = 4096  # bytes; node attrs larger than this are tensor values, not structure
NODE_FIELD, NODE_ATTR_FIELD = 1, 5
LEN = 2


class Truncated(ValueError):
    """The wire data ends inside a field or is not protobuf."""


def skim_graphdef(path: Path) -> bytes:
    """The GraphDef at `path`, re-encoded with attr entries larger than LARGE_ATTR left empty (their
    name kept, their value not copied)."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        out = bytearray()
        for number, wire, start, end, header in wire_fields(data, 0, len(data)):
            if number == NODE_FIELD and wire == LEN and end - start > LARGE_ATTR:
                node = bytearray()
                for n, w, s, e, h in wire_fields(data, start, end):
                    if not (n == NODE_ATTR_FIELD and e - s > LARGE_ATTR):
                        node += data[h:e]
                    else:  # keep the attr's name with an empty value: present, only not read
                        entry = b"".join(data[kh:ke] for kn, _, _, ke, kh in wire_fields(data, s, e) if kn == 1)
                        node += _key(NODE_ATTR_FIELD, LEN) + _varint(len(entry)) + entry
                out += _key(NODE_FIELD, LEN) + _varint(len(node)) + node
            else:
                out += data[header:end]
        return bytes(out)


def wire_fields(data, pos: int, end: int):
    """Yield (number, wire type, payload start, payload end, field start) for each field in data[pos:end]."""
    while pos < end:
        header = pos
        key, pos = _read_varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, next_pos = _read_varint(data, pos, end)
        elif wire == 1:
            next_pos = pos + 8
        elif wire == LEN:
            length, pos = _read_varint(data, pos, end)
            next_pos = pos + length
        elif wire == 5:
            next_pos = pos + 4
        else:
            raise Truncated(f"wire type {wire}")
        if number == 0 or next_pos > end:
            raise Truncated("field runs past the end")
        yield number, wire, pos, next_pos, header
        pos = next_pos


def _read_varint(data, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise Truncated("varint runs past the end")


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)
