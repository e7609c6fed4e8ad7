# The committed quality result: `mlx-lowbit bench quality` on the lent GPU
# machine as five processes side by side (each distill row trains on the GPU
# while the other rows run), merged into one table by wait.sh.
# There, from the project's root: source benchmarks/gpu/env.sh; bash benchmarks/gpu/quality.sh OUT
out=$1
model=${MODEL:-/root/stage/SmolLM2-135M-Instruct.Q4_1.gguf}
common=(--model "$model" --calib-samples 64 --calib-length 256 --no-plots
  --distill-steps "${STEPS:-400}" --distill-batch 32 --distill-lr 3e-4 --distill-generated 512)
mkdir -p "$out"
# Five processes share the cores: a few BLAS threads each.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} OPENBLAS_NUM_THREADS=${OMP_NUM_THREADS:-4}
launch() {
  setsid nohup python3 -m mlx_lowbit bench quality "${common[@]}" --rows "$2" --out "$out/$1" \
    >"$out/$1.log" 2>&1 &
}
launch float 'float16,mlx-*'
launch ours 'ternary-rtn,ternary-gptq,ternary-gptq+rotate,binary+bias-rtn,binary+bias-gptq,codebook-v8c6-rtn,codebook-v8c6-gptq'
launch ternary 'ternary-distill'
launch binary 'binary+bias-distill'
launch codebook 'codebook-v8c6-distill'
echo "launched 5 runs into $out"
