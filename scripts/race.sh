#!/usr/bin/env bash
# Runs the threaded tests under ThreadSanitizer, with the library and the Rust standard library
# both instrumented: the C test programs (built with gcc -fsanitize=thread) against a local
# mosquitto, then the library's unit tests and the Rust integration tests that drive clients from
# several threads. Fails on any TSan report (data race, lock-order inversion, thread leak, ...), on
# a program or test that fails, or when the detector is found not to work (a canary race it must
# report, a library without TSan calls). Prints a summary; logs go to target/race/logs/.
#
#   scripts/race.sh                      everything (about 2 minutes; the first run 7 more)
#   RACE_RUST_TESTS=0 scripts/race.sh    the C programs only
#
# Why not rustup's stable toolchain alone: it has no rust-src, so `-Zbuild-std` cannot rebuild
# std with TSan, and an uninstrumented std hides its synchronisation from TSan (the futex Mutex's
# contended path, Condvar, Once, Arc's fences): every value behind a Mutex then looks racy (108
# false reports in one free_race run). Debian's rustc-web is a stable compiler shipped with its
# own std source (rust-web-src), so this script extracts those packages, and the LLVM library the
# compiler links, under target/race/toolchain without installing them, and builds std from source
# with TSan (RUSTC_BOOTSTRAP=1 for the -Z flags). The TSan runtime is rustup's
# librustc-stable_rt.tsan.a, of the same LLVM major version; the programs link it whole, so one
# runtime serves gcc's instrumentation of the C code and LLVM's of the library (gcc's own libtsan
# lacks entry points LLVM 22 emits).
#
# No suppressions: with std instrumented, nothing outside this project is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/target/race
triple=x86_64-unknown-linux-gnu
started=$SECONDS

# --- The toolchain: Debian's rustc-web, its std source, and the LLVM it links ----------------
tc=$work/toolchain
if [ ! -x "$tc/usr/bin/rustc" ]; then
  command -v apt-get >/dev/null || { echo "race.sh needs apt-get (Debian) for rustc-web" >&2; exit 1; }
  candidate() { apt-cache policy rustc-web 2>/dev/null | sed -n 's/ *Candidate: //p'; }
  version=$(candidate)
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    version=$(candidate)
  fi
  [ -n "$version" ] && [ "$version" != "(none)" ] || { echo "no rustc-web package available" >&2; exit 1; }
  minor=$(echo "$version" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
  llvm=$(apt-cache depends "libstd-rust-web-$minor=$version" | sed -n 's/.*Depends: \(libllvm[0-9]*\)$/\1/p' | head -1)
  echo "extracting rustc-web $version (std source, $llvm) into $tc"
  rm -rf "$work/debs" "$tc"
  mkdir -p "$work/debs" "$tc"
  # apt-get download writes to the current directory as the _apt user where it can.
  chmod 777 "$work/debs"
  (cd "$work/debs" && apt-get download -q "rustc-web=$version" "libstd-rust-web-$minor=$version" \
    "libstd-rust-web-dev=$version" "rust-web-src=$version" "$llvm" >/dev/null)
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$tc"; done
  rm -rf "$work/debs"
  # The source package carries the compiler's source too; -Zbuild-std needs only library/.
  src=$(readlink -f "$tc/usr/lib/rustlib/src/rust")
  rm -rf "$src/compiler" "$src/src"
fi
export LD_LIBRARY_PATH=$tc/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
rustc_web=$tc/usr/bin/rustc
runtime=$(rustc --print sysroot)/lib/rustlib/$triple/lib/librustc-stable_rt.tsan.a
[ -f "$runtime" ] || { echo "no TSan runtime at $runtime" >&2; exit 1; }
# rustc links test executables with the runtime it finds in its own sysroot.
cp "$runtime" "$tc/usr/lib/rustlib/$triple/lib/"
llvm_of() { "$1" -vV | sed -n 's/^LLVM version: //p'; }
echo "toolchain: $("$rustc_web" --version) (LLVM $(llvm_of "$rustc_web")), TSan runtime of" \
  "$(rustc --version) (LLVM $(llvm_of rustc))"

# --- The library, std included, built with TSan -------------------------------------------
export RUSTC=$rustc_web RUSTDOC=$tc/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=thread"
cargo_tsan=(-Zbuild-std=std,panic_unwind --target "$triple" --target-dir "$work/build")
cargo build -q --lib "${cargo_tsan[@]}"
lib=$work/build/$triple/debug
# The library must really be instrumented: it calls TSan for its own memory accesses.
nm -D "$lib/libmqttclient.so" | grep ' U __tsan_write8$' >/dev/null ||
  { echo "$lib/libmqttclient.so is not instrumented" >&2; exit 1; }

# --- The C programs ------------------------------------------------------------------------
bin=$work/bin
mkdir -p "$bin"
cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O1 -g -fsanitize=thread
  -fno-omit-frame-pointer -I "$root/include")
gcc "${cflags[@]}" -c tests/c/race/tsan_thread.c -o "$bin/tsan_thread.o"
# Compiled with gcc's instrumentation but linked without gcc's runtime: the program carries the
# LLVM runtime (whole, and exporting its interceptors so the library's malloc, pthread and socket
# calls reach it) and finds the instrumented library through its rpath.
build_c() { # name source
  gcc "${cflags[@]}" -c "$2" -o "$bin/$1.o"
  gcc -o "$bin/$1" "$bin/$1.o" "$bin/tsan_thread.o" -Wl,--whole-archive "$runtime" -Wl,--no-whole-archive \
    -rdynamic -L "$lib" -Wl,-rpath,"$lib" -lmqttclient -lpthread -ldl -lm -lrt
}
for name in ack_after_callback bad_input callbacks events event_userdata free_paths free_race mqtt5 \
  nocopy run_loop scale resilience; do
  build_c "$name" "tests/c/$name.c"
done
build_c canary tests/c/race/canary.c

# --- A broker ------------------------------------------------------------------------------
logs=$work/logs
rm -rf "$logs"
mkdir -p "$logs"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
declare -A broker_pid=()
# As tests/scale.rs's broker: no limit on connections, nor on the messages mosquitto keeps in
# flight or queued for one subscriber (beyond its defaults it drops messages, which would look
# like loss to scale.c).
start_broker() { # port
  printf '%s\n' "listener $1 127.0.0.1" "allow_anonymous true" "max_connections -1" \
    "max_inflight_messages 0" "max_queued_messages 0" >"$logs/mosquitto-$1.conf"
  "$mosq" -c "$logs/mosquitto-$1.conf" >>"$logs/mosquitto-$1.log" 2>&1 &
  broker_pid[$1]=$!
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "mosquitto did not start on port $1" >&2
  return 1
}
kill_broker() { # port
  [ -n "${broker_pid[$1]:-}" ] || return 0
  kill -9 "${broker_pid[$1]}" 2>/dev/null || true
  wait "${broker_pid[$1]}" 2>/dev/null || true
  broker_pid[$1]=
}
trap 'for p in "${!broker_pid[@]}"; do kill_broker "$p"; done' EXIT
port=$(free_port)
start_broker "$port"

# --- Runs ------------------------------------------------------------------------------------
export TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1"
summary=()
failed=0
total_reports=0
# Records one run: its TSan reports (in its log), exit code and a line its output must have.
record() { # label code seconds log expected-stdout-regex stdout-file
  local label=$1 code=$2 secs=$3 log=$4 expect=$5 out=$6 reports result=ok
  reports=$(grep -c '^WARNING: ThreadSanitizer' "$log" || true)
  total_reports=$((total_reports + reports))
  if [ "$reports" -gt 0 ]; then
    result="FAIL: $reports report(s), see $log"
  elif [ "$code" -ne 0 ]; then
    result="FAIL: exit $code, see $log"
  elif ! grep -qE -- "$expect" "$out"; then
    result="FAIL: no \"$expect\" in $out"
  fi
  [ "$result" = ok ] || failed=1
  summary+=("$(printf '%-32s %4ss %3s reports  %s' "$label" "$secs" "$reports" "$result")")
  echo "${summary[-1]}"
}
run() { # expected-stdout-regex name args...
  local expect=$1 name=$2
  shift 2
  local label="$name${*:+ $*}" t0=$SECONDS code=0
  local tag=${label// /-}
  timeout 600 "$bin/$name" "$port" "$@" >"$logs/$tag.out" 2>"$logs/$tag.log" || code=$?
  record "$label" "$code" $((SECONDS - t0)) "$logs/$tag.log" "$expect" "$logs/$tag.out"
}

# The canary must be reported (and so exit with TSan's exitcode).
code=0
"$bin/canary" 2>"$logs/canary.log" || code=$?
if [ "$code" -ne 66 ] || ! grep -q '^WARNING: ThreadSanitizer: data race' "$logs/canary.log"; then
  echo "TSan did not report the canary's race (exit $code): the detector does not work" >&2
  exit 1
fi
echo "canary: TSan reports a plain race"

# The arguments are those tests/c_programs.rs, tests/scale.rs and tests/c_resilience.rs give,
# smaller for scale (TSan runs them 5-15 times slower and each thread costs it memory).
run '^callbacks: ok \(mqttc-callbacks' callbacks
run '^callbacks: ok \(mqttc-net' callbacks inline
run '^callbacks: ok \(' callbacks loop
run '^run_loop: ok' run_loop
run '^events: ok' events
run '^event_userdata: ok' event_userdata
run '^free_paths: ok' free_paths
run '^free_race: ok \(300 rounds\)' free_race 300
run '^ack_after_callback: ok' ack_after_callback
run '^mqtt5: ok' mqtt5
run '^nocopy: ok' nocopy
run '^0 failure\(s\)$' bad_input
run '^clients: ok' scale clients 100 3
run '^churn: ok' scale churn 300 0
run '^threads: ok' scale threads 8 500

# resilience.c asks for its broker to be killed and restarted (as tests/c_resilience.rs does), so
# it gets a broker of its own; its first server URI is a port nobody listens on.
live=$(free_port)
dead=$(free_port)
start_broker "$live"
t0=$SECONDS
code=0
: >"$logs/resilience.out"
exec 4< <(timeout 600 "$bin/resilience" "$dead" "$live" 2>"$logs/resilience.log")
program=$!
while IFS= read -r line <&4; do
  echo "$line" >>"$logs/resilience.out"
  case "$line" in
    "kill me" | "kill me again") kill_broker "$live" ;;
    "restart me") sleep 0.3 && start_broker "$live" ;;
  esac
done
exec 4<&-
wait "$program" || code=$?
kill_broker "$live"
record "resilience" "$code" $((SECONDS - t0)) "$logs/resilience.log" '^done$' "$logs/resilience.out"

# --- The Rust tests of the engine's threads, under TSan -----------------------------------------
# The library's unit tests and the integration tests that drive clients from Rust against a broker
# (real or scripted). Those that compile C programs are covered above.
if [ "${RACE_RUST_TESTS:-1}" != 0 ]; then
  # Printing a panic's backtrace from this build takes seconds, longer than tests/panics.rs gives
  # a panicked client to report its failure.
  export RUST_BACKTRACE=0
  suites=(lib events panics direct_write resilience fake_broker flow_control mqtt5 mqtt5_dispatch
    hostile_broker tls outgoing_limits ack_after_callback)
  targets=()
  for suite in "${suites[@]}"; do
    if [ "$suite" = lib ]; then targets+=(--lib); else targets+=(--test "$suite"); fi
  done
  # One build of every test binary, two at a time, before the runs.
  cargo test -q --no-run "${cargo_tsan[@]}" "${targets[@]}" 2>"$logs/cargo-build-tests.log" ||
    { cat "$logs/cargo-build-tests.log" >&2; exit 1; }
  for suite in "${suites[@]}"; do
    case $suite in
      # The trie's tests are single-threaded and take minutes under TSan.
      lib) args=(--lib -- --skip trie::tests) ;;
      # A latency bound of a few milliseconds, which TSan's slowdown breaks.
      flow_control) args=(--test "$suite" -- --skip a_retained_message_arrives_within_milliseconds) ;;
      *) args=(--test "$suite") ;;
    esac
    t0=$SECONDS
    code=0
    out=$logs/cargo-test-$suite
    cargo test -q "${cargo_tsan[@]}" "${args[@]}" >"$out.out" 2>"$out.log" || code=$?
    record "cargo test $suite" "$code" $((SECONDS - t0)) "$out.log" '^test result: ok' "$out.out"
  done
fi

echo
echo "== scripts/race.sh at $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(date -u +%Y-%m-%d)," \
  "$((SECONDS - started)) s, $total_reports TSan report(s)"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "race.sh: FAILED (logs in $logs)"
  exit 1
fi
echo "race.sh: all runs clean"
