#!/usr/bin/env python3
"""Damages a mneme checkpoint on purpose, for the bad-input tests.

    ckpt_damage.py IN OUT [--model KEY=INT]... [--model-task-labels TASK=N]...
                      [--rows NAME=N]... [--rename OLD=NEW]... [--drop NAME]...

--model sets an integer field of the mneme.model metadata (vocab, heads, ...),
--model-task-labels gives a task N labels there (l0, l1, ...),
--rows keeps the first N rows of a tensor, --rename and --drop do what they
say (optimizer moments included when NAME is a parameter). Standard library
only: the tests that use it must not need numpy.
"""
import json
import struct
import sys


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def main(argv):
    src, dst, ops = argv[1], argv[2], argv[3:]
    with open(src, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    data = raw[8 + hlen:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        tensors[name] = {"dtype": t["dtype"], "shape": t["shape"], "bytes": data[a:b]}

    def related(name):
        return [n for n in tensors if n == name or n.endswith("." + name)
                and n.startswith("optimizer.")]

    model = json.loads(meta["mneme.model"])
    for i in range(0, len(ops), 2):
        op, arg = ops[i], ops[i + 1]
        if op == "--model":
            k, v = arg.split("=", 1)
            model[k] = int(v)
        elif op == "--model-task-labels":
            k, v = arg.split("=", 1)
            for t in model["tasks"]:
                if t["name"] == k:
                    t["labels"] = ["l%d" % i for i in range(int(v))]
        elif op == "--rows":
            k, v = arg.split("=", 1)
            for n in related(k):
                t = tensors[n]
                row = len(t["bytes"]) // t["shape"][0]
                t["shape"][0] = int(v)
                t["bytes"] = t["bytes"][:row * int(v)]
        elif op == "--rename":
            k, v = arg.split("=", 1)
            for n in related(k):
                tensors[n[:len(n) - len(k)] + v] = tensors.pop(n)
        elif op == "--drop":
            for n in related(arg):
                del tensors[n]
        else:
            sys.exit("ckpt_damage.py: unknown option " + op)
    meta["mneme.model"] = json.dumps(model, separators=(",", ":"))
    meta.pop("mneme.checksum", None)

    out = {"__metadata__": meta}
    blob = bytearray()
    for name, t in tensors.items():
        out[name] = {"dtype": t["dtype"], "shape": t["shape"],
                     "data_offsets": [len(blob), len(blob) + len(t["bytes"])]}
        blob += t["bytes"]
    # signed again as the writer signs (safetensors.c), so that the file is
    # refused for what was changed and not for a checksum
    meta["mneme.checksum"] = "%016x" % fnv1a(bytes(blob))
    unset = "0" * 16
    meta["mneme.header_checksum"] = unset
    h = json.dumps(out, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    at = b'"mneme.header_checksum":"'
    h = h.replace(at + unset.encode(), at + (b"%016x" % fnv1a(h)))
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + bytes(blob))


if __name__ == "__main__":
    main(sys.argv)
