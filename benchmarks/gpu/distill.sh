# The distill rows alone, for a second call after quality.sh's (whose
# ternary distill row did not finish inside the call on 2026-12-03): three
# runs share the GPU, each trains for at most LIMIT seconds (the rows record
# the steps they did), and wait.sh merges them; the merge with the first
# call's result is made afterwards with `bench quality --merge`.
# There, from the project's root: source benchmarks/gpu/env.sh; bash benchmarks/gpu/distill.sh OUT
out=$1
model=${MODEL:-/root/stage/SmolLM2-135M-Instruct.Q4_1.gguf}
limit=${LIMIT:-280}
common=(--model "$model" --calib-samples 64 --calib-length 256 --no-plots
  --distill-batch 32 --distill-lr "${LR:-3e-4}" --distill-generated "${GEN:-1024}" --distill-time-limit "$limit" ${MB:+--distill-micro-batch "$MB"} ${DTYPE:+--distill-dtype "$DTYPE"})
mkdir -p "$out"
# launch NAME ROW STEPS
launch() {
  OMP_NUM_THREADS=4 OPENBLAS_NUM_THREADS=4 setsid nohup python3 -m mlx_lowbit bench quality \
    "${common[@]}" --distill-steps "$3" --rows "$2" --out "$out/$1" >"$out/$1.log" 2>&1 &
}
# One pass of 32 x 256 tokens holds ~30 GB: three runs on top of their caches ran out of
# memory on 2026-12-04; MB=16 halves a pass.
for row in ${ROWS:-ternary-distill+rotate ternary-distill binary+bias-distill}; do
  # TAG names the runs of one setting, for several settings side by side.
  launch "${row//+/_}${TAG:-}" "$row" "${STEPS:-700}"
done
echo "launched $(ls "$out"/*.log | wc -l) runs into $out"
