# The committed quality result: `mlx-lowbit bench quality` on the lent GPU
# machine as processes side by side (the distill rows train on the GPU while
# the other rows run on the cores), merged into one table by wait.sh.
# There, from the project's root: source benchmarks/gpu/env.sh; bash benchmarks/gpu/quality.sh OUT
# One distill step at 32 x 256 tokens holds ~30 GB (SmolLM2's 49k-word logits);
# three such processes and the others ran the H200 out of memory (2026-12-03),
# hence micro-batches of 8 (the same steps). All of it fits one ten-minute call.
out=$1
model=${MODEL:-/root/stage/SmolLM2-135M-Instruct.Q4_1.gguf}
# SEQ=1: sequential calibration (2026-12-04: far too slow with nine processes
# side by side, and binary + bias hit a singular Hessian; see docs/QUANTIZERS.md).
seq=(); [ "${SEQ:-0}" = 1 ] && seq=(--sequential)
common=(--model "$model" --calib-samples 64 --calib-length 256 --no-plots "${seq[@]}"
  --distill-batch 32 --distill-micro-batch 8 --distill-lr 3e-4 --distill-generated 1024)
mkdir -p "$out"
# launch NAME ROWS THREADS STEPS [SECONDS]: BLAS threads per process, so that
# the processes together about fill the 16 cores; SECONDS of training at most.
launch() {
  local limit=(); [ -n "${5:-}" ] && limit=(--distill-time-limit "$5")
  OMP_NUM_THREADS=$3 OPENBLAS_NUM_THREADS=$3 setsid nohup python3 -m mlx_lowbit bench quality \
    "${common[@]}" --distill-steps "$4" "${limit[@]}" --rows "$2" --out "$out/$1" >"$out/$1.log" 2>&1 &
}
launch float 'float16,mlx-*' 2 0
for f in ternary binary binary+bias codebook-v8c6; do
  launch "$f" "$f-rtn,$f-gptq,$f-rtn+rotate,$f-gptq+rotate" 3 0
done
launch codebook-v16c12 'codebook-v16c12-rtn,codebook-v16c12-rtn+rotate' 1 0
# The distill rows start from gptq+rotate and train for at most LIMIT seconds
# (TERNARY_LIMIT for ternary), so that each finishes inside the call. The
# ternary row trains best alone (distill.sh, a call of its own: 1 087 steps in
# 330 s on 2026-12-04, against ~1.1 s a step with nine processes here).
launch ternary-distill 'ternary-distill+rotate' 1 "${TERNARY_STEPS:-3000}" "${TERNARY_LIMIT:-300}"
launch binary+bias-distill 'binary+bias-distill+rotate' 1 "${STEPS:-1000}" "${LIMIT:-300}"
launch codebook-v8c6-distill 'codebook-v8c6-distill+rotate' 1 "${STEPS:-1000}" "${LIMIT:-300}"
echo "launched $(ls "$out"/*.log | wc -l) runs into $out"
