#!/usr/bin/env bash
# Runs every libFuzzer target in BIN_DIR for SECONDS each, starting from its seed corpus in
# tests/fuzz/corpus/<name>/. Exits non-zero on the first target that finds a crash, a leak, a
# timeout or memory over the limit, and names the input that did it.
set -euo pipefail
bin_dir=${1:?usage: run.sh BIN_DIR SECONDS}
seconds=${2:-60}
source_dir=$(cd "$(dirname "$0")" && pwd)
shopt -s nullglob
targets=("$bin_dir"/fuzz_*)
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets in $bin_dir" >&2; exit 1; }
for target in "${targets[@]}"; do
  [ -x "$target" ] || continue
  name=$(basename "$target"); name=${name#fuzz_}
  work="$bin_dir/work/$name"; artifacts="$bin_dir/artifacts/$name"
  mkdir -p "$work" "$artifacts"
  echo "== fuzz $name for ${seconds}s"
  if ! UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$source_dir/corpus/$name" \
        >"$bin_dir/$name.log" 2>&1; then
    tail -n 60 "$bin_dir/$name.log"
    echo "fuzz $name FAILED; inputs: $(ls "$artifacts")" >&2
    echo "(save the input as tests/fuzz/corpus/$name/regression-... once fixed)" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^Done' "$bin_dir/$name.log" | tr '\n' ' '; echo
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a finding"
