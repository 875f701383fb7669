#!/usr/bin/env python3
"""Flash and RAM use of a 32-bit little-endian ARM ELF (the firmware), from its section
headers: what `size -A` shows, split by memory. No binutils needed.

usage: elf_size.py FIRMWARE.elf [--ram-origin 0x20000000] [--json]

Flash = allocated sections with contents (vector table, code, read-only data, and the
initial values of .data, which are copied from flash). RAM = allocated sections placed at
or above the RAM origin (.data, .bss, .uninit); the stack comes on top of that (the
firmware reports its peak use at run time).
"""
import json
import struct
import sys

SHF_ALLOC = 0x2
SHT_NOBITS = 8


def sections(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise SystemExit(f"{path}: not a 32-bit little-endian ELF")
    (e_shoff,) = struct.unpack_from("<I", data, 0x20)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    hdrs = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        name, typ, flags, addr, offset, size = struct.unpack_from("<IIIIII", data, off)
        hdrs.append((name, typ, flags, addr, offset, size))
    stroff = hdrs[e_shstrndx][4]

    def name_of(n):
        end = data.index(b"\0", stroff + n)
        return data[stroff + n:end].decode()

    return [(name_of(n), typ, flags, addr, size) for (n, typ, flags, addr, _, size) in hdrs]


def main():
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    path = args[0]
    ram_origin = 0x20000000
    if "--ram-origin" in args:
        ram_origin = int(args[args.index("--ram-origin") + 1], 0)
    rows, flash, ram = [], 0, 0
    for name, typ, flags, addr, size in sections(path):
        if not flags & SHF_ALLOC or size == 0:
            continue
        in_ram = addr >= ram_origin
        if typ != SHT_NOBITS:
            flash += size  # .data's initial values live in flash too
        if in_ram:
            ram += size
        rows.append((name, size, addr, "RAM" if in_ram else "flash"))
    if "--json" in args:
        print(json.dumps({"flash_bytes": flash, "static_ram_bytes": ram,
                          "sections": [{"name": n, "size": s, "addr": a, "memory": m}
                                       for n, s, a, m in rows]}))
        return
    print(f"{'section':<16}{'size':>10}  {'address':>10}  memory")
    for name, size, addr, mem in rows:
        print(f"{name:<16}{size:>10}  {addr:#010x}  {mem}")
    print(f"flash: {flash} bytes ({flash / 1024:.1f} KiB); "
          f"static RAM: {ram} bytes ({ram / 1024:.1f} KiB), plus the stack")


if __name__ == "__main__":
    main()
