#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, header drift, all tests (each starts its own
# mosquitto on a free loopback port; tests/fuzz_corpus.rs replays the fuzz corpus), the C test
# programs under AddressSanitizer, the CMake build of the library and C examples, the API
# reference (Doxygen), and the packaging check (install, then find_package / add_subdirectory /
# pkg-config from outside).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# build.rs regenerates include/mqttclient.h; the committed copy must match it.
if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- include/mqttclient.h; then
  echo "include/mqttclient.h is out of date: commit the regenerated header" >&2
  git --no-pager diff --stat -- include/mqttclient.h >&2
  exit 1
fi
# Every public function and type is documented, and every status a function returns is listed in
# its Errors paragraph (tests/api_docs.rs runs this too, and tests the checker itself).
python3 scripts/check_api_docs.py
# The C tests link target/debug/libmqttclient.so, which `cargo test` alone does not produce.
cargo build --lib
cargo test --all-targets
# The C and C++ programs again, built with AddressSanitizer and LeakSanitizer (tests/common/mod.rs):
# any leak or memory error, the library's included, makes a program exit non-zero and its test fail.
MQTTC_SANITIZE=address cargo test --test c_programs --test c_resilience --test basic_example --test cli_tools \
  --test bench_binary --test scale --test cpp_programs
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
# The API reference (Doxygen; any warning fails it), which the packaging check finds installed.
cmake --build build --target docs
# Installs that build and builds a consumer from it: nothing is compiled by cargo again.
scripts/packaging.sh build
echo "all checks passed"
