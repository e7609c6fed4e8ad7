# The committed quality result: `mlx-lowbit bench quality` on the lent GPU
# machine as ten processes side by side (the distill rows train on the GPU
# while the other rows run on the cores), merged into one table by wait.sh.
# There, from the project's root: source benchmarks/gpu/env.sh; bash benchmarks/gpu/quality.sh OUT
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
launch gptq-a 'ternary-rtn,ternary-gptq,binary-rtn,binary-gptq,binary+bias-rtn,binary+bias-gptq' 2 0
launch gptq-b 'codebook-*-rtn,codebook-*-gptq,*-rtn+rotate' 2 0
launch rotate-a 'ternary-gptq+rotate,binary-gptq+rotate,binary+bias-gptq+rotate' 2 0
launch rotate-b 'codebook-*-gptq+rotate' 2 0
# The distill rows start from gptq+rotate. Ternary, whose target is not met
# yet, trains longest.
launch ternary 'ternary-distill+rotate' 1 "${TERNARY_STEPS:-1000}"
launch binary+bias 'binary+bias-distill+rotate' 1 "${STEPS:-600}"
launch codebook-v8 'codebook-v8c6-distill+rotate' 1 "${STEPS:-600}"
launch binary 'binary-distill+rotate' 1 "${SHORT_STEPS:-400}"
launch codebook-v16 'codebook-v16c12-distill+rotate' 1 "${SHORT_STEPS:-400}"
echo "launched 10 runs into $out"
