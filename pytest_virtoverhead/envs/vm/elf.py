"""The program headers of an ELF64 little-endian file: what the kernel
extraction (its PVH note), the initramfs (is busybox static?) and the
prestart's copies (where the loaded part ends) read of an ELF image.
Standard library only."""

from __future__ import annotations

import struct
from typing import BinaryIO, NamedTuple

MAGIC = b"\x7fELF"
PT_INTERP = 3
PT_NOTE = 4


class Segment(NamedTuple):
    type: int
    offset: int  # in the file
    filesz: int  # bytes in the file


def is_elf64_le(head: bytes) -> bool:
    """Does ``head`` (a file's first bytes) start a 64-bit little-endian ELF file?"""
    return head[:4] == MAGIC and len(head) > 5 and head[4] == 2 and head[5] == 1


def header_table(head: bytes) -> tuple[int, int, int]:
    """(file offset, entry size, entry count) of the program header table,
    from the ELF header ``head`` (the file's first 64 bytes or more)."""
    (phoff,) = struct.unpack_from("<Q", head, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    return phoff, phentsize, phnum


def program_headers(f: BinaryIO) -> list[Segment]:
    """The program headers of the ELF file ``f`` (opened in binary mode, or
    an ``io.BytesIO``), read as ELF64 little-endian."""
    f.seek(0)
    phoff, phentsize, phnum = header_table(f.read(64))
    f.seek(phoff)
    table = f.read(phentsize * phnum)
    out = []
    for i in range(phnum):
        base = i * phentsize
        (p_type,) = struct.unpack_from("<I", table, base)
        (p_offset,) = struct.unpack_from("<Q", table, base + 8)
        (p_filesz,) = struct.unpack_from("<Q", table, base + 32)
        out.append(Segment(p_type, p_offset, p_filesz))
    return out
