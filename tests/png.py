"""Reads a PNG as the figure and report tests need it: its size, and its
pixels (8-bit RGB or RGBA, the five row filters undone), without any
imaging library.

    python3 tests/png.py FILE size            -> W H
    python3 tests/png.py FILE distinct-middle -> byte values in the middle row
    python3 tests/png.py FILE near RRGGBB...  -> pixels within 40 of each colour
"""
import struct
import sys
import zlib


def read(path):
    b = open(path, "rb").read()
    if b[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit("%s: not a PNG" % path)
    w, h, depth, kind = struct.unpack(">IIBB", b[16:26])
    at, data = 8, b""
    while at < len(b):
        n, t = struct.unpack(">I4s", b[at:at + 8])
        if t == b"IDAT":
            data += b[at + 8:at + 8 + n]
        at += 12 + n
    return w, h, depth, kind, zlib.decompress(data)


def rows(w, h, kind, raw):
    bpp = {2: 3, 6: 4}[kind]
    stride, prev, out = w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            c = prev[i - bpp] if i >= bpp else 0
            b = prev[i]
            if f == 4:
                p = a + b - c
                pred = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            else:
                pred = [0, a, b, (a + b) // 2][f]
            line[i] = (line[i] + pred) & 255
        out.append(line)
        prev = line
    return out, bpp


def main():
    path, what = sys.argv[1], sys.argv[2]
    w, h, depth, kind, raw = read(path)
    if what == "size":
        print(w, h)
    elif what == "distinct-middle":
        stride = len(raw) // h
        print(len(set(raw[1 + stride * (h // 2):stride * (h // 2 + 1)])))
    elif what == "near":
        pixels, bpp = rows(w, h, kind, raw)
        counts = []
        for hexc in sys.argv[3:]:
            rgb = [int(hexc[i:i + 2], 16) for i in (0, 2, 4)]
            counts.append(sum(1 for line in pixels for x in range(0, len(line), bpp)
                              if all(abs(line[x + k] - rgb[k]) < 40 for k in range(3))))
        print(*counts)


main()
