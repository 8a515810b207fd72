#!/usr/bin/env bash
# Fuzzes each target of fuzz/ with cargo-fuzz (libFuzzer) for a set time and prints how many
# inputs each ran. Not part of CI (installing cargo-fuzz takes minutes): CI runs the committed
# corpus through the same checks with `cargo test --test fuzz_corpus`.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     default: 60 s, every target
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 7200 decode       stop at that many executions instead,
#                                                        or at the time limit if it comes first
#
# Targets (their checks live in fuzz/checks/):
#   decode  any bytes as a packet stream, whole and one byte at a time; decode(encode(p)) == p;
#           a small max packet size, with a counting allocator bounding what each decode holds
#   topic   topic-name and topic-filter validators against the section 4.7 rules, and on the wire
#   trie    insert/remove/get/match programs against a map and a brute-force matcher
# The decode target runs every input under both protocol versions, MQTT 3.1.1 and MQTT 5.
#
# Stable Rust only: RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz passes. The default
# sanitizer is none (the checked code is safe Rust, and the allocation bound is checked by the
# targets' own counting allocator); FUZZ_SANITIZER=address builds with ASan, 3 to 8 times slower,
# and then also stops on any single allocation of 1 MiB or more (-malloc_limit_mb=1).
#
# New inputs found go to fuzz/work/<target>/ (git-ignored), so the committed seeds in
# fuzz/corpus/<target>/ stay as they are. A crash stops that target and leaves its input in
# fuzz/artifacts/<target>/; minimise it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin -s none <target> fuzz/artifacts/<target>/<file>   (in fuzz/)
# and commit the result to fuzz/corpus/<target>/ as regression-<what>, beside the fix.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode topic trie)
sanitizer=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build -s "$sanitizer"

flags=(-max_total_time="$seconds" -rss_limit_mb=512 -print_final_stats=1)
[ "$sanitizer" = address ] && flags+=(-malloc_limit_mb=1)
[ -n "${FUZZ_RUNS:-}" ] && flags+=(-runs="$FUZZ_RUNS")
summary=()
failed=0
for target in "${targets[@]}"; do
  mkdir -p "work/$target"
  log="work/$target.log"
  echo "== $target: $seconds s"
  status=0
  cargo fuzz run -s "$sanitizer" "$target" "work/$target" "corpus/$target" -- "${flags[@]}" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$status" -eq 0 ]; then
    summary+=("$target: ${runs:-?} executions (${rate:-?}/s), no failure")
  else
    failed=1
    summary+=("$target: FAILED after ${runs:-?} executions, see fuzz/$log and fuzz/artifacts/$target/")
    grep -m1 -A6 -E "panicked|ERROR: libFuzzer" "$log" || tail -20 "$log"
  fi
done
printf '%s\n' "${summary[@]}"
exit "$failed"
