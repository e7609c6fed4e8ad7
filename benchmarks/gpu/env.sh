# Source this on the lent GPU machine, from the project's root (see README.md
# here): unpacks the staged wheels and model once per machine, installs them
# into /root/site and builds mlx-lowbit in place against MLX's CUDA build.
set -euo pipefail
if [ ! -f /root/site/.installed ]; then
  mkdir -p /root/stage
  # The parts may end inside the model file (a probe with the wheels only).
  cat /root/parts/stage.part.* | tar xf - -C /root/stage 2>/dev/null || true
  python3 -m pip install -q --no-index --no-deps --no-compile --target /root/site /root/stage/*.whl \
    /root/parts/gguf-*.whl
  # gguf imports yaml; the mirror has no cp312 PyYAML wheel, and PyYAML runs
  # without its C extension, so its Python package alone is unpacked.
  python3 -c "import yaml" 2>/dev/null || python3 -c "
import glob, zipfile
z = zipfile.ZipFile(glob.glob('/root/parts/pyyaml-*.whl')[0])
z.extractall('/root/site', [n for n in z.namelist() if n.startswith('yaml/') and n.endswith('.py')])"
  touch /root/site/.installed
fi
export PYTHONPATH=/root/site:$PWD/python PYTHONUNBUFFERED=1
if ! ls python/mlx_lowbit/_ext*.so >/dev/null 2>&1; then
  start=$SECONDS
  CMAKE_ARGS="-DMLX_LOWBIT_LTO=OFF" python3 setup.py -q build_ext --inplace -j16 >/tmp/build.log 2>&1 || { tail -40 /tmp/build.log; exit 1; }
  echo "built mlx-lowbit in $((SECONDS - start)) s"
fi
python3 -c "import mlx.core as mx, mlx_lowbit as lb; print(mx.__version__, mx.default_device(), lb._ext.cpu_isa())"
