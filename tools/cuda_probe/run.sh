# Build and run the probe (probe.cpp + probe_kernel.cu) against an installed
# MLX-CUDA wheel (SITE: the directory holding its mlx/ package;
# benchmarks/gpu/env.sh installs it in /root/site). The wheel's libmlx.so
# finds the CUDA libraries through the Python packages; the probe is given
# the directories Python loaded them from.
set -eu
site=${SITE:-/root/site}
here=$(dirname "$0")
tmp=${TMPDIR:-/tmp}
libs=$(PYTHONPATH=$site python3 -c "
import mlx.core as mx, os
mx.eval(mx.ones(1, stream=mx.gpu))
dirs = {os.path.dirname(l.split()[-1]) for l in open('/proc/self/maps') if '.so' in l}
print(':'.join(sorted(d for d in dirs if d)))")
cuda=$(dirname "$(dirname "$(command -v nvcc)")")
nvcc --version | tail -1
nvcc -O2 -arch=sm_90 -fatbin "$here/probe_kernel.cu" -o "$tmp/probe_kernel.fatbin"
g++ -std=c++20 -O2 -I"$site/mlx/include" -I"$cuda/include" -c "$here/probe.cpp" -o "$tmp/probe.o"
g++ "$tmp/probe.o" -L"$site/mlx/lib" -lmlx -L"$cuda/lib64" -L"$cuda/lib64/stubs" -lcuda -o "$tmp/cuda_probe"
PROBE_FATBIN=$tmp/probe_kernel.fatbin LD_LIBRARY_PATH=$libs:$site/mlx/lib:${LD_LIBRARY_PATH:-} "$tmp/cuda_probe"
