"""A large model's weights (Prepared.weights), kept in one file that the worker maps, not in its heap.

After freezing, the weights live in TensorFlow's variables: anonymous memory, as big as the model,
held until the process ends. Written once to a file and mapped back, they cost only page cache,
which the kernel can drop; evict() drops this process's pages whenever the weights are not in use
(between targets), so each runtime loading its own copy for verification finds the memory free.
"""

from __future__ import annotations

import mmap
from pathlib import Path

ALIGNMENT = 64  # each array at a multiple of this: what numpy and the runtimes like for their views


def store(arrays: dict, path: Path) -> dict:
    """Write `arrays` to `path` one after another; → {name: read-only-in-practice view of the mapped file}.

    The views map the file copy-on-write (never written through) so converters may take them as
    writable buffers (OpenVINO's shared constants do)."""
    import numpy as np

    offsets, offset = {}, 0
    with open(path, "wb") as f:
        for name, array in arrays.items():
            pad = -offset % ALIGNMENT
            f.write(b"\0" * pad)
            offset += pad
            array = np.ascontiguousarray(array)
            f.write(memoryview(array.reshape(-1)).cast("B"))
            offsets[name] = (offset, array.dtype, array.shape)
            offset += array.nbytes
    if not offset:
        return {}
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    return {name: np.frombuffer(mapped, dtype, int(np.prod(shape, dtype=np.int64)), start).reshape(shape)
            for name, (start, dtype, shape) in offsets.items()}


def evict(weights: dict) -> None:
    """Drop the mapped weights' pages from this process's memory; they are read from the file again
    when next used. Safe because the mapping is never written."""
    seen = set()
    for array in weights.values():
        base = array
        while isinstance(base, memoryview) or getattr(base, "base", None) is not None:
            base = base.obj if isinstance(base, memoryview) else base.base
        if isinstance(base, mmap.mmap) and id(base) not in seen:
            seen.add(id(base))
            base.madvise(mmap.MADV_DONTNEED)
