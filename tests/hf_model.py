#!/usr/bin/env python3
"""Small Hugging Face model folders for the tests, and their logits.

  hf_model.py make DIR [options]    config.json, model.safetensors (random
                                    weights), vocab.txt, tokenizer_config.json
  hf_model.py logits DIR [--pair]   token ids (or, with --pair, "a<TAB>b"
                                    texts of whole vocabulary words) on stdin,
                                    one JSON array of logits a line out
  hf_model.py mlm DIR               token ids on stdin; for each [MASK] (id 4)
                                    the MLM head's top 5 ids and probabilities

The forward pass is written here from the published architectures with
numpy in float64, independently of mneme's code, so that the test compares
mneme's import against what the weights mean, not against itself.
"""
import argparse
import json
import math
import struct
import sys

import numpy as np

WORDS = ("the a movie film was is great awful good bad plot acting not very "
         "and but it i liked hated boring fun story end").split()


def vocab_list():
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + \
        ["##s", "##ing", "##ed", ",", ".", "!", "?"]


# ---- safetensors ------------------------------------------------------------

def write_safetensors(path, tensors, dtype="F32", pad_to=8):
    header, blobs, off = {}, [], 0
    np_dtype = {"F32": "<f4", "F16": "<f2"}[dtype]
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype=np_dtype).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((-len(h)) % pad_to)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dt = {"F32": "<f4", "F16": "<f2"}[info["dtype"]]
        out[name] = np.frombuffer(data[a:b], dtype=dt).astype(np.float64).reshape(info["shape"])
    return out


# ---- making a folder ----------------------------------------------------------

BERT_MODULES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "o": "attention.output.dense", "ln1": "attention.output.LayerNorm",
    "i": "intermediate.dense", "out": "output.dense", "ln2": "output.LayerNorm",
}
DISTIL_MODULES = {
    "q": "attention.q_lin", "k": "attention.k_lin", "v": "attention.v_lin",
    "o": "attention.out_lin", "ln1": "sa_layer_norm", "i": "ffn.lin1", "out": "ffn.lin2",
    "ln2": "output_layer_norm",
}


def make(args):
    import os
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    vocab = vocab_list()
    V = len(vocab) + args.extra_vocab
    C, L, H, I, P = args.hidden, args.layers, args.heads, args.inter, args.positions
    distil = args.arch == "distilbert"
    K = args.labels
    t = {}

    def w(*shape, std=0.3):
        return rng.normal(0.0, std, size=shape)

    def ln(name):
        g = "gamma" if args.gamma_beta else "weight"
        b = "beta" if args.gamma_beta else "bias"
        t[name + "." + g] = 1.0 + w(C, std=0.1)
        t[name + "." + b] = w(C, std=0.1)

    pre = ("distilbert." if distil else "bert.") if args.prefix else ""
    t[pre + "embeddings.word_embeddings.weight"] = w(V, C)
    t[pre + "embeddings.position_embeddings.weight"] = w(P, C)
    if not distil:
        t[pre + "embeddings.token_type_embeddings.weight"] = w(args.types, C)
    ln(pre + "embeddings.LayerNorm")
    mods = DISTIL_MODULES if distil else BERT_MODULES
    layer = "transformer.layer" if distil else "encoder.layer"
    for l in range(L):
        p = f"{pre}{layer}.{l}."
        for m in ("q", "k", "v", "o"):
            t[p + mods[m] + ".weight"] = w(C, C)
            t[p + mods[m] + ".bias"] = w(C, std=0.1)
        ln(p + mods["ln1"])
        t[p + mods["i"] + ".weight"] = w(I, C)
        t[p + mods["i"] + ".bias"] = w(I, std=0.1)
        t[p + mods["out"] + ".weight"] = w(C, I)
        t[p + mods["out"] + ".bias"] = w(C, std=0.1)
        ln(p + mods["ln2"])
    if not distil and args.pooler:
        t[pre + "pooler.dense.weight"] = w(C, C)
        t[pre + "pooler.dense.bias"] = w(C, std=0.1)
    if K:
        if distil:
            t["pre_classifier.weight"] = w(C, C)
            t["pre_classifier.bias"] = w(C, std=0.1)
        t["classifier.weight"] = w(K, C)
        t["classifier.bias"] = w(K, std=0.1)
    if args.mlm:
        if distil:
            t["vocab_transform.weight"] = w(C, C)
            t["vocab_transform.bias"] = w(C, std=0.1)
            t["vocab_layer_norm.weight"] = 1.0 + w(C, std=0.1)
            t["vocab_layer_norm.bias"] = w(C, std=0.1)
            t["vocab_projector.bias"] = w(V, std=0.1)
        else:
            t["cls.predictions.transform.dense.weight"] = w(C, C)
            t["cls.predictions.transform.dense.bias"] = w(C, std=0.1)
            t["cls.predictions.transform.LayerNorm.weight"] = 1.0 + w(C, std=0.1)
            t["cls.predictions.transform.LayerNorm.bias"] = w(C, std=0.1)
            t["cls.predictions.bias"] = w(V, std=0.1)
    for name in args.drop or []:
        del t[name]
    for spec in args.reshape or []:
        name, rows = spec.split("=")
        a = t[name]
        t[name] = w(int(rows), *a.shape[1:])
    write_safetensors(f"{args.dir}/model.safetensors", t, args.dtype)

    if distil:
        cfg = {"model_type": "distilbert", "architectures": ["DistilBertForSequenceClassification"],
               "vocab_size": V, "dim": C, "n_layers": L, "n_heads": H, "hidden_dim": I,
               "max_position_embeddings": P, "activation": args.act,
               "sinusoidal_pos_embds": False, "initializer_range": 0.02}
    else:
        cfg = {"model_type": "bert", "architectures": ["BertForSequenceClassification"],
               "vocab_size": V, "hidden_size": C, "num_hidden_layers": L,
               "num_attention_heads": H, "intermediate_size": I,
               "max_position_embeddings": P, "type_vocab_size": args.types,
               "hidden_act": args.act, "layer_norm_eps": args.eps,
               "position_embedding_type": "absolute", "initializer_range": 0.02}
    if K:
        cfg["id2label"] = {str(i): f"class{i}" for i in range(K)}
        cfg["label2id"] = {f"class{i}": i for i in range(K)}
    for kv in args.set or []:
        k, v = kv.split("=", 1)
        cfg[k] = json.loads(v)
    with open(f"{args.dir}/config.json", "w") as f:
        json.dump(cfg, f, indent=2)
    with open(f"{args.dir}/vocab.txt", "w") as f:
        f.write("\n".join(vocab) + "\n")
    with open(f"{args.dir}/tokenizer_config.json", "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f)


# ---- the forward pass -----------------------------------------------------------

def layer_norm(x, g, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b


def gelu(x, act):
    if act == "gelu":
        return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class Ref:
    def __init__(self, d):
        self.cfg = json.load(open(f"{d}/config.json"))
        self.t = read_safetensors(f"{d}/model.safetensors")
        self.distil = self.cfg["model_type"] == "distilbert"

    def get(self, name):
        t = self.t
        pre = "distilbert." if self.distil else "bert."
        for cand in (pre + name, name):
            for alt in (cand, cand.replace("LayerNorm.weight", "LayerNorm.gamma")
                        .replace("LayerNorm.bias", "LayerNorm.beta")):
                if alt in t:
                    return t[alt]
        raise KeyError(name)

    def hidden(self, ids, types):
        return self.logits(ids, types, hidden=True)

    def mlm(self, ids):
        c, t = self.cfg, self.t
        x = self.hidden(np.array(ids), np.zeros(len(ids), dtype=int))
        if self.distil:
            w, b = t["vocab_transform.weight"], t["vocab_transform.bias"]
            g, be = t["vocab_layer_norm.weight"], t["vocab_layer_norm.bias"]
            bias, act, eps = t["vocab_projector.bias"], c["activation"], 1e-12
        else:
            w, b = t["cls.predictions.transform.dense.weight"], t["cls.predictions.transform.dense.bias"]
            g = t["cls.predictions.transform.LayerNorm.weight"]
            be = t["cls.predictions.transform.LayerNorm.bias"]
            bias, act, eps = t["cls.predictions.bias"], c.get("hidden_act", "gelu"), c.get("layer_norm_eps", 1e-12)
        dec = self.get("embeddings.word_embeddings.weight")
        out = []
        for p, tok in enumerate(ids):
            if tok != 4:
                continue
            h = layer_norm(gelu(x[p] @ w.T + b, act), g, be, eps)
            lg = h @ dec.T + bias
            pr = np.exp(lg - lg.max())
            pr /= pr.sum()
            top = sorted(range(len(pr)), key=lambda v: (-pr[v], v))[:5]
            out.append({"position": p, "top": [[v, float(pr[v])] for v in top]})
        return out

    def logits(self, ids, types, hidden=False):
        c, g = self.cfg, self.get
        distil = self.distil
        C = c["dim"] if distil else c["hidden_size"]
        H = c["n_heads"] if distil else c["num_attention_heads"]
        L = c["n_layers"] if distil else c["num_hidden_layers"]
        act = c["activation"] if distil else c.get("hidden_act", "gelu")
        eps = 1e-12 if distil else c.get("layer_norm_eps", 1e-12)
        T, D = len(ids), C // H
        x = g("embeddings.word_embeddings.weight")[ids] + \
            g("embeddings.position_embeddings.weight")[:T]
        if not distil:
            x = x + g("embeddings.token_type_embeddings.weight")[types]
        x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
        mods = DISTIL_MODULES if distil else BERT_MODULES
        layer = "transformer.layer" if distil else "encoder.layer"
        for l in range(L):
            p = f"{layer}.{l}."

            def lin(m, v):
                return v @ g(p + mods[m] + ".weight").T + g(p + mods[m] + ".bias")
            q, k, v = lin("q", x), lin("k", x), lin("v", x)
            ctx = np.zeros_like(x)
            for h in range(H):
                s = slice(h * D, (h + 1) * D)
                sc = q[:, s] @ k[:, s].T / math.sqrt(D)
                sc = np.exp(sc - sc.max(-1, keepdims=True))
                ctx[:, s] = (sc / sc.sum(-1, keepdims=True)) @ v[:, s]
            x = layer_norm(lin("o", ctx) + x, g(p + mods["ln1"] + ".weight"),
                           g(p + mods["ln1"] + ".bias"), eps)
            f = lin("out", gelu(lin("i", x), act))
            x = layer_norm(f + x, g(p + mods["ln2"] + ".weight"), g(p + mods["ln2"] + ".bias"), eps)
        if hidden:
            return x
        cls = x[0]
        if distil:
            pooled = np.maximum(self.t["pre_classifier.weight"] @ cls + self.t["pre_classifier.bias"], 0)
        else:
            pooled = np.tanh(g("pooler.dense.weight") @ cls + g("pooler.dense.bias"))
        return self.t["classifier.weight"] @ pooled + self.t["classifier.bias"]


def logits(args):
    ref = Ref(args.dir)
    vocab = {w: i for i, w in enumerate(open(f"{args.dir}/vocab.txt").read().split("\n"))}
    for line in sys.stdin:
        line = line.rstrip("\n")
        if args.pair:
            a, b = line.split("\t")
            def words(t):
                # whole vocabulary words and punctuation, as BERT splits them
                for p in ",.!?":
                    t = t.replace(p, f" {p} ")
                return [vocab[w] for w in t.lower().split()]
            ia, ib = words(a), words(b)
            ids = [2] + ia + [3] + ib + [3]
            types = [0] * (len(ia) + 2) + [1] * (len(ib) + 1)
        else:
            ids = [int(v) for v in line.split()]
            types = [0] * len(ids)
        print(json.dumps([float(v) for v in ref.logits(np.array(ids), np.array(types))]))


def mlm(args):
    ref = Ref(args.dir)
    for line in sys.stdin:
        print(json.dumps(ref.mlm([int(v) for v in line.split()])))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--arch", default="bert", choices=["bert", "distilbert"])
    m.add_argument("--hidden", type=int, default=16)
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--heads", type=int, default=2)
    m.add_argument("--inter", type=int, default=32)
    m.add_argument("--positions", type=int, default=24)
    m.add_argument("--types", type=int, default=2)
    m.add_argument("--labels", type=int, default=3)
    m.add_argument("--act", default="gelu")
    m.add_argument("--eps", type=float, default=1e-12)
    m.add_argument("--extra-vocab", type=int, default=3)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--dtype", default="F32", choices=["F32", "F16"])
    m.add_argument("--prefix", type=int, default=1)
    m.add_argument("--pooler", type=int, default=1)
    m.add_argument("--mlm", type=int, default=0)
    m.add_argument("--gamma-beta", action="store_true")
    m.add_argument("--drop", action="append", help="leave this tensor out")
    m.add_argument("--reshape", action="append", help="NAME=ROWS: a wrong shape")
    m.add_argument("--set", action="append", help="KEY=JSON in config.json")
    lg = sub.add_parser("logits")
    lg.add_argument("dir")
    lg.add_argument("--pair", action="store_true")
    ml = sub.add_parser("mlm")
    ml.add_argument("dir")
    args = ap.parse_args()
    {"make": make, "logits": logits, "mlm": mlm}[args.cmd](args)


if __name__ == "__main__":
    main()
