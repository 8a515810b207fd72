#!/usr/bin/env bash
# Installs what the build and tests need beyond Rust, gcc and Python: mosquitto (the broker the
# tests run), its command-line clients (compared against ours), CMake, g++ and pkg-config (the
# packaging check builds a C++ consumer and one through pkg-config), and gcc's AddressSanitizer
# runtime (the C tests run again under it), the system CA store (a TLS test checks that it does
# not trust a private CA), the openssl CLI (a TLS test makes certificates as mosquitto's TLS
# guide does), Valgrind (memcheck runs the free race test, seeing inside the library), Paho C's
# headers (tests/bench_binary.rs builds and runs benches/paho_store.c and benches/fleet_paho.c,
# peers of the benchmark), libmosquitto's headers (it builds benches/fleet_mosquitto.c too),
# Doxygen (the API reference, CMake's docs target), groff (tests/cli_tools.rs checks the man
# pages with it) and microsocks (a SOCKS5 proxy the proxy tests connect through); and from
# PyPI: amqtt in target/amqtt-venv, a broker with WebSocket listeners (Debian's mosquitto has none)
# for tests/websocket.rs, and tree-sitter with its Julia grammar in target/julia-syntax-venv, with
# which tests/julia_wrapper.rs parses the Julia package (no Julia runtime can be installed here).
# Idempotent.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
command -v g++ >/dev/null || need+=(g++)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -s /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
command -v openssl >/dev/null || need+=(openssl)
command -v valgrind >/dev/null || need+=(valgrind)
[ -f /usr/include/MQTTAsync.h ] || need+=(libpaho-mqtt-dev)
[ -f /usr/include/mosquitto.h ] || need+=(libmosquitto-dev)
command -v doxygen >/dev/null || need+=(doxygen)
command -v microsocks >/dev/null || need+=(microsocks)
command -v groff >/dev/null || need+=(groff-base)
# -print-file-name answers with a path only when the file exists.
gcc -print-file-name=libasan.so | grep -q / || need+=(libasan8)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
amqtt_venv="$(dirname "$0")/../target/amqtt-venv"
if [ ! -x "$amqtt_venv/bin/amqtt" ]; then
  echo "installing amqtt into $amqtt_venv"
  python3 -m venv "$amqtt_venv"
  "$amqtt_venv/bin/pip" install -q --disable-pip-version-check amqtt==0.12.1
fi
julia_venv="$(dirname "$0")/../target/julia-syntax-venv"
if ! "$julia_venv/bin/python" -c 'import tree_sitter, tree_sitter_julia' 2>/dev/null; then
  echo "installing tree-sitter-julia into $julia_venv"
  python3 -m venv "$julia_venv"
  "$julia_venv/bin/pip" install -q --disable-pip-version-check tree-sitter==0.25.2 tree-sitter-julia==0.23.1
fi
