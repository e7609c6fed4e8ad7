# The committed quality result: `mlx-lowbit bench quality` on the lent GPU
# machine as processes side by side (the distill rows train on the GPU while
# the other rows run on the cores), merged into one table by wait.sh.
# There, from the project's root: source benchmarks/gpu/env.sh; bash benchmarks/gpu/quality.sh OUT
# Five distill processes at once ran the GPU out of memory (2026-12-03): three
# fit, and all of it fits in one ten-minute call.
out=$1
model=${MODEL:-/root/stage/SmolLM2-135M-Instruct.Q4_1.gguf}
common=(--model "$model" --calib-samples 64 --calib-length 256 --no-plots
  --distill-batch 32 --distill-lr 3e-4 --distill-generated 1024)
mkdir -p "$out"
# launch NAME ROWS THREADS STEPS: BLAS threads per process, so that the
# processes together about fill the 16 cores.
launch() {
  OMP_NUM_THREADS=$3 OPENBLAS_NUM_THREADS=$3 setsid nohup python3 -m mlx_lowbit bench quality \
    "${common[@]}" --distill-steps "$4" --rows "$2" --out "$out/$1" >"$out/$1.log" 2>&1 &
}
launch float 'float16,mlx-*' 2 0
for f in ternary binary binary+bias codebook-v8c6; do
  launch "$f" "$f-rtn,$f-gptq,$f-rtn+rotate,$f-gptq+rotate" 3 0
done
launch codebook-v16c12 'codebook-v16c12-rtn,codebook-v16c12-rtn+rotate' 1 0
# The distill rows start from gptq+rotate. Ternary, whose target is not met
# yet, trains longest.
launch ternary-distill 'ternary-distill+rotate' 1 "${TERNARY_STEPS:-500}"
launch binary+bias-distill 'binary+bias-distill+rotate' 1 "${STEPS:-300}"
launch codebook-v8c6-distill 'codebook-v8c6-distill+rotate' 1 "${STEPS:-300}"
echo "launched $(ls "$out"/*.log | wc -l) runs into $out"
