"""Memory workload: block writes and reads over a buffer, like sysbench memory.

sysbench ``memory`` (1.0.x) runs events of one block each (1 KiB by
default): a C loop stores (write) or loads (read) every machine word of the
block, sequentially or at random word offsets, and reports MiB/s. Its
buffer is one block per thread, so everything stays in the L1 cache and the
score is mostly the cost of an event.

:func:`blocks` does the Python counterpart with no per-byte interpreter
work: each block is one C-level operation on a ``bytearray`` (a ``memcpy``
of a block-sized source for writes, a ``memchr`` scan that never matches for
reads), walked over a buffer of ``buffer_size`` bytes. At 1 KiB blocks the
rate is dominated by the interpreter's per-block cost (~100 ns), just as
sysbench's is by its per-event cost; raise ``block_size`` (64 KiB, 1 MiB) and
``buffer_size`` (beyond the last-level cache) to measure memory bandwidth.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

from ._common import finish, positive_int

MiB = 1024 * 1024


def blocks(block_size: int = 1024, total_size: int = 512 * MiB, mode: str = "seq", oper: str = "write",
           buffer_size: int = MiB, seed: int = 0) -> dict[str, Any]:
    """Transfer ``total_size`` bytes in ``block_size`` blocks over a buffer.

    - ``oper="write"``: copy a block-sized source into the buffer at each
      block offset (a ``memcpy`` per block).
    - ``oper="read"``: scan the block at each offset with ``bytearray.find``
      for a byte that is never there (a ``memchr`` per block: reads only).
    - ``mode="seq"``: block offsets 0, 1, 2, ... wrapping at the end of the
      buffer; ``mode="rnd"``: the buffer's blocks in a shuffled order
      (``seed``), repeated. sysbench's rnd mode instead touches random words
      inside its single block.
    - ``buffer_size`` (default 1 MiB, about the L2 cache): set it to
      ``block_size`` to reuse one block as sysbench does, or far above the
      last-level cache to reach main memory.

    Records ``total_size / MiB`` "MiB" (rate in MiB/s). Returns ``seconds``,
    ``rate`` and ``mib_per_s`` (MiB/s), ``unit`` ("MiB/s"), ``mib``,
    ``blocks`` (count), ``block_size``, ``buffer_size``, ``mode``, ``oper``.
    With the defaults one call takes about 60-100 ms on the host
    (~5-8 GiB/s; sysbench memory does ~7 GiB/s here).
    """
    positive_int("block_size", block_size)
    positive_int("total_size", total_size)
    positive_int("buffer_size", buffer_size)
    if mode not in ("seq", "rnd"):
        raise ValueError(f"mode must be 'seq' or 'rnd', got {mode!r}")
    if oper not in ("write", "read"):
        raise ValueError(f"oper must be 'write' or 'read', got {oper!r}")
    if buffer_size < block_size:
        raise ValueError(f"buffer_size ({buffer_size}) must be at least block_size ({block_size})")
    count = total_size // block_size
    if count < 1:
        raise ValueError(f"total_size ({total_size}) is smaller than one block ({block_size})")
    nblocks = buffer_size // block_size
    offsets = list(range(0, nblocks * block_size, block_size))
    if mode == "rnd":
        random.Random(seed).shuffle(offsets)
    buf = bytearray(b"\x5a" * (nblocks * block_size))  # touched: no page faults in the timed loop
    src = b"\xa5" * block_size
    walk = itertools.islice(itertools.cycle(offsets), count)
    if oper == "write":
        t0 = time.perf_counter()
        for off in walk:
            buf[off:off + block_size] = src
        seconds = time.perf_counter() - t0
    else:
        find, needle = buf.find, b"\x01"
        t0 = time.perf_counter()
        for off in walk:
            find(needle, off, off + block_size)
        seconds = time.perf_counter() - t0
    mib = count * block_size / MiB
    out = finish(mib, "MiB", seconds, blocks=count, block_size=block_size, buffer_size=nblocks * block_size,
                 mode=mode, oper=oper)
    out["mib"] = mib
    out["mib_per_s"] = out["rate"]
    return out
