#!/usr/bin/env python3
"""Edits a safetensors file's header in place, as a hostile hand or a
tool that knows nothing of mneme would: sets or drops metadata entries and
may strip mneme's checksums (whose absence the reader must then make up
for by range checks).

    st_edit.py FILE [--set KEY=VALUE]... [--drop KEY]... [--strip-checksums]
"""
import json
import struct
import sys


def main(argv):
    path, args = argv[1], argv[2:]
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    meta = header.setdefault("__metadata__", {})
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--set":
            key, value = args[i + 1].split("=", 1)
            meta[key] = value
            i += 2
        elif a == "--drop":
            meta.pop(args[i + 1], None)
            i += 2
        elif a == "--strip-checksums":
            meta.pop("mneme.checksum", None)
            meta.pop("mneme.header_checksum", None)
            i += 1
        else:
            sys.exit("st_edit.py: unknown argument " + a)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


if __name__ == "__main__":
    main(sys.argv)
