#!/usr/bin/env python3
"""Compare two folders of 8-bit PNGs (same names, same sizes) channel value by channel value.

    scripts/images_within.py DIR_A DIR_B [TOLERANCE]

Exits 0 when every value of every image in DIR_A is within TOLERANCE (default 1) of the same
value in DIR_B and both hold the same file names, 1 otherwise (printing the worst difference).
The CPU and a GPU convolve with different kernels, whose float rounding can move an 8-bit value
by one level; anything more is a real difference. Standard library only (CI runs it as is).
"""
import os
import struct
import sys
import zlib


def decode_png(path):
    """(width, height, channels, bytes) of a non-interlaced 8-bit gray/RGB/RGBA PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        sys.exit(f"{path}: only 8-bit non-interlaced gray/RGB(A) PNGs are compared")
    raw, stride = zlib.decompress(idat), width * channels
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    return width, height, channels, bytes(out)


def main():
    a, b = sys.argv[1], sys.argv[2]
    tolerance = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    names_a, names_b = sorted(os.listdir(a)), sorted(os.listdir(b))
    if names_a != names_b:
        sys.exit(f"different files: {names_a} vs {names_b}")
    worst = 0
    for name in names_a:
        wa, ha, ca, pa = decode_png(os.path.join(a, name))
        wb, hb, cb, pb = decode_png(os.path.join(b, name))
        if (wa, ha, ca) != (wb, hb, cb):
            sys.exit(f"{name}: {wa}x{ha}x{ca} vs {wb}x{hb}x{cb}")
        worst = max([worst] + [abs(x - y) for x, y in zip(pa, pb)])
    print(f"{len(names_a)} images, largest difference {worst} (tolerance {tolerance})")
    sys.exit(0 if worst <= tolerance else 1)


if __name__ == "__main__":
    main()
