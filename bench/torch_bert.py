#!/usr/bin/env python3
"""The PyTorch side of `mneme bench`: the same BERT-style classifier, the
same shapes, the same training step, timed the same way.

Model: word + position + token-type embeddings -> LayerNorm -> L post-LN
blocks {self-attention (fused q|k|v projection, 1/sqrt(D) scaling, softmax)
-> dense -> residual -> LayerNorm -> intermediate dense -> GELU (erf form)
-> dense -> residual -> LayerNorm} -> pooler (dense + tanh on the first
token) -> classifier head. LayerNorm eps 1e-12, no dropout, 4 labels;
vocabulary 261 (mneme's byte tokenizer) and `seq` positions unless --vocab
and --positions say otherwise (a Hugging Face shape: 30522 and 512).

Step: zero grads, forward, cross-entropy (under torch.autocast("cpu",
bfloat16) with --autocast bf16, mixed precision as mneme's
model.precision = "bf16"), backward, clip_grad_norm_(1.0),
AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0.01). Full-length random
batches of `batch` rows x `seq` tokens. After warm-up steps, each step is
timed on its own and the median is reported, as mneme bench does.

Run it with the Debian interpreter, which has torch 1.13:
    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/torch_bert.py \
        --hidden 128 --layers 4 --heads 4 --intermediate 512 --seq 64 \
        --batch 32 --threads 1
Prints one JSON object; peak_rss_kib is the process's peak resident set
(getrusage), model and optimizer state included.
"""
import argparse
import json
import math
import os
import resource
import statistics
import time


def threads_arg():
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--threads", type=int, default=1)
    return ap.parse_known_args()[0].threads


# Debian's torch calls OpenBLAS through the generic BLAS interface, and
# torch.set_num_threads does not reach it: OpenBLAS would use every core
# even at --threads 1. Its thread count is read once, when it loads, so it
# is set before torch is imported (unless the caller set it).
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads_arg()))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

VOCAB = 261          # TOKENIZER_VOCAB in src/tokenizer.h
LABELS = 4
TYPE_VOCAB = 2


class Block(nn.Module):
    def __init__(self, C, H, I):
        super().__init__()
        self.H = H
        self.qkv = nn.Linear(C, 3 * C)
        self.attn_out = nn.Linear(C, C)
        self.ln1 = nn.LayerNorm(C, eps=1e-12)
        self.inter = nn.Linear(C, I)
        self.out = nn.Linear(I, C)
        self.ln2 = nn.LayerNorm(C, eps=1e-12)

    def forward(self, x):
        B, T, C = x.shape
        D = C // self.H
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.H, D).transpose(1, 2)
        k = k.view(B, T, self.H, D).transpose(1, 2)
        v = v.view(B, T, self.H, D).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(D)), dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = self.ln1(x + self.attn_out(ctx))
        return self.ln2(x + self.out(F.gelu(self.inter(x))))  # erf GELU


class Bert(nn.Module):
    def __init__(self, C, L, H, I, T, vocab=VOCAB, positions=None):
        super().__init__()
        self.word = nn.Embedding(vocab, C)
        self.pos = nn.Embedding(positions or T, C)
        self.tok_type = nn.Embedding(TYPE_VOCAB, C)
        self.ln = nn.LayerNorm(C, eps=1e-12)
        self.blocks = nn.ModuleList(Block(C, H, I) for _ in range(L))
        self.pool = nn.Linear(C, C)
        self.head = nn.Linear(C, LABELS)
        for mod in self.modules():
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                nn.init.normal_(mod.weight, std=0.02)
            if isinstance(mod, nn.Linear):
                nn.init.zeros_(mod.bias)

    def forward(self, ids):
        B, T = ids.shape
        pos = torch.arange(T, device=ids.device)
        x = self.word(ids) + self.pos(pos)[None] + self.tok_type.weight[0]
        x = self.ln(x)
        for blk in self.blocks:
            x = blk(x)
        return self.head(torch.tanh(self.pool(x[:, 0])))


def step_flops(C, L, I, B, T):
    """Matrix-product FLOPs of forward + backward, as model_step_flops."""
    BT = B * T
    per_block = (2 * BT * C * 3 * C + 2 * BT * C * C + 4 * BT * C * I
                 + 4 * B * T * T * C)
    return 3.0 * (L * per_block + 2 * B * C * C)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=256)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=VOCAB)
    ap.add_argument("--positions", type=int, default=0,
                    help="position embeddings (default: --seq)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none",
                    help="bf16: forward and loss under torch.autocast('cpu', bfloat16)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Bert(a.hidden, a.layers, a.heads, a.intermediate, a.seq, a.vocab,
                 a.positions or a.seq)
    # Same optimizer semantics as mneme: no decay on biases and LayerNorm.
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    ids = torch.randint(5, a.vocab, (a.batch, a.seq))
    ids[:, 0] = 2  # [CLS]
    labels = torch.randint(0, LABELS, (a.batch,))

    times = []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        if a.autocast == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(ids), labels)
        else:
            loss = F.cross_entropy(model(ids), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    flops = step_flops(a.hidden, a.layers, a.intermediate, a.batch, a.seq)
    print(json.dumps({
        "impl": "torch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "autocast": a.autocast,
        "model": {"hidden": a.hidden, "layers": a.layers, "heads": a.heads,
                  "intermediate": a.intermediate, "seq": a.seq,
                  "vocab": a.vocab, "positions": a.positions or a.seq},
        "params": sum(p.numel() for p in model.parameters()),
        "batch": a.batch, "steps": a.steps,
        "step_ms_median": step * 1e3,
        "steps_per_s": 1.0 / step,
        "tokens_per_s": a.batch * a.seq / step,
        "gflops": flops / step * 1e-9,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }, indent=2))


if __name__ == "__main__":
    main()
