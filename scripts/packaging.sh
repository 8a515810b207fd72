#!/usr/bin/env bash
# Checks the install (the library, headers, package files, and the command-line tools with their
# man pages), then builds tests/packaging/consumer (copied out of the source tree) the three
# ways another project uses mqttclient, and runs every program built:
#   1. find_package(mqttclient) against `cmake --install` into a temporary prefix;
#   2. add_subdirectory of this source tree;
#   3. pkg-config, with the compiler called directly.
# The CMake ways build consumer (C, shared library), consumer_static (C, static library),
# consumer_cxx (the C header from C++17) and consumer_hpp (the C++ API, mqttclient.hpp, through
# the mqttclient::mqttclient_cpp target); pkg-config builds all but consumer_static.
#
# Usage: scripts/packaging.sh [BUILD_DIR]
# BUILD_DIR (default: build) is a CMake build of this tree that is already built, as by
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build
# (scripts/test.sh does that first). Nothing is rebuilt: the install copies that build, and the
# add_subdirectory build shares its cargo directory (MQTTC_CARGO_TARGET_DIR), where cargo's library
# is already up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$(cd "${1:-build}" && pwd)
[ -f "$build/CMakeCache.txt" ] || { echo "packaging: $build is not a CMake build directory" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
# The SONAME policy (docs/install.md), which build.rs and CMakeLists.txt each apply:
# libmqttclient.so.0.<minor> while the version is 0.x, libmqttclient.so.<major> from 1.0 on.
IFS=. read -r major minor _ <<<"$version"
if [ "$major" = 0 ]; then soname=libmqttclient.so.0.$minor; else soname=libmqttclient.so.$major; fi
jobs=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r tests/packaging/consumer "$work/consumer"

fail() {
  echo "packaging: $*" >&2
  exit 1
}

# Runs a consumer program, which prints "consumer[_cxx|_hpp] ok: mqttclient <version>".
run() {
  local out
  out=$("$1") || fail "$1 failed"
  case $out in
    "consumer ok: mqttclient $version" | "consumer_cxx ok: mqttclient $version" | "consumer_hpp ok: mqttclient $version")
      echo "  $(basename "$1"): $out" ;;
    *) fail "$1 printed: $out" ;;
  esac
}

# A program linked with the shared library needs it by its SONAME and loads it from $2.
check_shared() {
  readelf -d "$1" | grep -qF "Shared library: [$soname]" || fail "$1 does not need $soname"
  local loaded
  loaded=$(ldd "$1" | awk -v so="$soname" '$1 == so && $2 == "=>" { print $3 }')
  [ -n "$loaded" ] && [ "$(realpath "$loaded")" = "$(realpath "$2/$soname")" ] ||
    fail "$1 does not load $soname from $2: $(ldd "$1" | grep mqttclient)"
}

# A program linked with the static library does not need the shared one.
check_static() {
  if readelf -d "$1" | grep -q "(NEEDED).*libmqttclient"; then fail "$1 needs the shared library"; fi
}

# Configures and builds the consumer with CMake in $work/$1 (further arguments go to CMake), runs
# its four programs and checks how they were linked; $2 is where the shared library is loaded from.
build_consumer() {
  local dir=$work/$1 libdir=$2
  shift 2
  if ! { cmake -S "$work/consumer" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" &&
    cmake --build "$dir" -j "$jobs"; } >"$dir.log" 2>&1; then
    cat "$dir.log" >&2
    fail "building the consumer in $dir failed"
  fi
  for exe in consumer consumer_static consumer_cxx consumer_hpp; do run "$dir/$exe"; done
  for exe in consumer consumer_cxx consumer_hpp; do check_shared "$dir/$exe" "$libdir"; done
  check_static "$dir/consumer_static"
}

echo "packaging: cmake --install $build into a temporary prefix"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
# GNUInstallDirs chose lib/, lib64/ or lib/<multiarch>/: the .pc file is in its pkgconfig/.
pc=$(find "$prefix" -name mqttclient.pc)
[ -n "$pc" ] || fail "no mqttclient.pc installed"
libdir=$(dirname "$(dirname "$pc")")
real=$libdir/libmqttclient.so.$version
[ -f "$real" ] && [ ! -L "$real" ] || fail "$real is not a file"
# The links ldconfig and the linker want: the SONAME and libmqttclient.so.
check_link() {
  [ "$(readlink "$libdir/$1")" = "$2" ] || fail "$libdir/$1 is not a link to $2"
}
check_link "$soname" "libmqttclient.so.$version"
check_link libmqttclient.so "$soname"
installed_soname=$(readelf -d "$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')
[ "$installed_soname" = "$soname" ] || fail "$real has the SONAME '$installed_soname', not $soname (docs/install.md)"
[ -f "$libdir/libmqttclient.a" ] || fail "no static library"
for h in mqttclient.h mqttclient.hpp; do
  cmp -s "include/$h" "$prefix/include/$h" || fail "the installed $h differs from include/$h"
done
for f in mqttclientConfig.cmake mqttclientConfigVersion.cmake; do
  [ -f "$libdir/cmake/mqttclient/$f" ] || fail "no $f"
done
# The API reference is installed once the docs target has built it (scripts/test.sh does).
docdir=$prefix/share/doc/mqttclient/html
if [ -f "$build/docs/docs.stamp" ]; then
  [ -f "$docdir/index.html" ] || fail "the API reference was built but $docdir/index.html was not installed"
fi
# The command-line tools, which load the installed library, and their man pages.
for tool in mqttc_pub mqttc_sub mqttc_rr; do
  exe=$prefix/bin/$tool
  [ -x "$exe" ] || fail "no bin/$tool"
  check_shared "$exe" "$libdir"
  # --version exits 1, as mosquitto's tools do.
  out=$("$exe" --version || true)
  [ "$out" = "$tool version $version running on libmqttclient $version." ] || fail "$tool --version printed: $out"
  page=$prefix/share/man/man1/$tool.1
  cmp -s "man/$tool.1" "$page" || fail "$page differs from man/$tool.1 (or is missing)"
  help=$("$exe" --help || true)
  grep -q -- " -t : " <<<"$help" || fail "$tool --help describes no -t"
done
echo "  installed: $(cd "$prefix" && find . ! -type d ! -path './share/doc/*' | sort | tr '\n' ' ')"
[ ! -d "$docdir" ] || echo "  and the API reference: $(find "$docdir" -type f | wc -l) files in share/doc/mqttclient/html"

echo "packaging: find_package(mqttclient $version) with CMAKE_PREFIX_PATH=<prefix>"
build_consumer find_package "$libdir" -DCMAKE_PREFIX_PATH="$prefix" -DMQTTCLIENT_VERSION="$version"
found=$(sed -n 's/^mqttclient_DIR:PATH=//p' "$work/find_package/CMakeCache.txt")
[ "$found" = "$libdir/cmake/mqttclient" ] || fail "find_package found $found, not the install"

echo "packaging: add_subdirectory($root), sharing the cargo directory of $build"
cargo_dir=$(sed -n 's/^MQTTC_CARGO_TARGET_DIR:PATH=//p' "$build/CMakeCache.txt")
profile=$(sed -n 's/^MQTTC_CARGO_PROFILE:STRING=//p' "$build/CMakeCache.txt")
profile_dir=$profile
[ "$profile" != dev ] || profile_dir=debug
build_consumer add_subdirectory "$cargo_dir/$profile_dir" \
  -DMQTTCLIENT_SOURCE_DIR="$root" -DMQTTC_CARGO_TARGET_DIR="$cargo_dir" -DMQTTC_CARGO_PROFILE="$profile"

echo "packaging: pkg-config with PKG_CONFIG_PATH=<prefix>/.../pkgconfig"
export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --modversion mqttclient)" = "$version" ] || fail "pkg-config says version $(pkg-config --modversion mqttclient)"
pkg-config --static --libs mqttclient | grep -q -- "-lmqttclient -lpthread -ldl -lm" ||
  fail "pkg-config --static --libs gives $(pkg-config --static --libs mqttclient)"
dir=$work/pkg-config
mkdir "$dir"
rpath="-Wl,-rpath,$(pkg-config --variable=libdir mqttclient)"
# shellcheck disable=SC2046 # pkg-config's output is meant to be split into arguments
gcc -std=c11 -Wall -Wextra -pedantic -Werror "$work/consumer/main.c" -o "$dir/consumer" \
  $(pkg-config --cflags --libs mqttclient) "$rpath"
# shellcheck disable=SC2046
g++ -std=c++17 -Wall -Wextra -pedantic -Werror "$work/consumer/main.cpp" -o "$dir/consumer_cxx" \
  $(pkg-config --cflags --libs mqttclient) "$rpath"
# shellcheck disable=SC2046
g++ -std=c++17 -Wall -Wextra -pedantic -Werror "$work/consumer/wrapper.cpp" -o "$dir/consumer_hpp" \
  $(pkg-config --cflags --libs mqttclient) "$rpath"
for exe in consumer consumer_cxx consumer_hpp; do
  run "$dir/$exe"
  check_shared "$dir/$exe" "$libdir"
done
echo "packaging: all passed"
