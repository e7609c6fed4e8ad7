# Wait (at most SECONDS) for quality.sh's runs, then merge what finished into
# DEST (the tool's $OUT): quality.md/json, the plots and the runs' logs (one file).
# MERGE=0: each run's quality.md/json to DEST/<run>/ instead (runs that share rows).
# Usage: bash benchmarks/gpu/wait.sh OUT SECONDS DEST
out=$1; limit=$2; dest=$3
start=$SECONDS
n=0
while pgrep -f "mlx_lowbit bench quality" >/dev/null && ((SECONDS - start < limit)); do
  sleep 10
  ((++n % 6)) && continue
  for f in "$out"/*.log; do echo "== $(basename "$f"): $(grep -E '^\[|ppl |error' "$f" | tail -1)"; done
done
pgrep -f "mlx_lowbit bench quality" >/dev/null && echo "still running after $limit s"
runs=(); for d in "$out"/*/; do [ -f "$d/quality.json" ] && runs+=("$d"); done
if ! ((${#runs[@]})); then
  echo "no run finished"
elif [ "${MERGE:-1}" = 0 ]; then
  # Runs of the same rows with different settings do not merge: each comes back alone.
  for d in "${runs[@]}"; do mkdir -p "$dest/$(basename "$d")" && cp "$d"/quality.{json,md} "$dest/$(basename "$d")/"; done
else
  python3 -m mlx_lowbit bench quality --merge "${runs[@]}" --allow-partial --out "$dest/quality" 2>&1 | tail -40
fi
mkdir -p "$dest/quality"
for f in "$out"/*.log; do echo "== $(basename "$f")"; tail -n 80 "$f"; done >"$dest/quality/logs.txt"
