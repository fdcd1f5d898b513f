#!/bin/sh
# fp32 against emulated bf16 at MiniLM-L6-H384 (seq 128, batch 32), 2 threads,
# alternating: what the conversions and the weights' copy add to a step
M=${MNEME:-./mneme}
B=$(cd "$(dirname "$0")/.." && pwd)
for r in 1 2 3; do
  for p in fp32 bf16; do
    MNEME_BF16=emulate $M bench $B/pretrained.cfg --set base.from=$B/models/minilm-l6-h384 \
      --set model.max_len=128 --set finetune.batch=32 --set threads=2 --set model.precision=$p \
      --steps 3 | jq -c --arg r $r '{rep: ($r|tonumber), precision, steps_per_s, step_ms_median, gflops, sgemm_gflops, gemm_fraction, heap_bytes_delta}'
  done
done
