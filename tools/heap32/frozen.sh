#!/bin/sh
# Build a 32-bit unix MicroPython with lib/at frozen into it: the binary that
# `tools/heap32/run.py --frozen`, `HEAP32_FROZEN=` (tests/test_budget.py, make bench)
# and `VBOARD_MICROPYTHON=` (tests/test_workset.py) take, to measure the frozen image
# a WROOM runs. A development tool: it needs a MicroPython source tree at a release
# (e.g. `git archive v1.27.0` of github.com/micropython/micropython) and a 32-bit C
# toolchain (Debian: gcc-multilib). Nothing of it is kept in this repository.
# With mbedTLS in the tree (lib/mbedtls: `git archive` of github.com/Mbed-TLS/mbedtls at
# the commit the release's submodule names, 107ea89 = v3.6.2 for v1.27.0) it has the tls
# module, so SSL links can be measured; without, it is built without TLS.
# --plain builds the same MicroPython with nothing of ours frozen in: the `.mpy` targets
# run on it (HEAP32_MPY= for make bench), the firmware's names and strings not in its image.
#   usage: tools/heap32/frozen.sh [--plain] <micropython source>   -> prints the binary's path
set -eu
plain=""
if [ "${1:-}" = "--plain" ]; then plain=1; shift; fi
src=$(cd "${1:?usage: $0 [--plain] <micropython source>}" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
# The build checks that the micropython-lib submodule is there; the manifest needs nothing from it.
mkdir -p "$src/lib/micropython-lib"
[ -e "$src/lib/micropython-lib/README.md" ] || : > "$src/lib/micropython-lib/README.md"
if [ -n "$plain" ]; then
    manifest="$src/ports/unix/at_plain_manifest.py"
    echo "# nothing frozen: lib/at runs from .mpy files" > "$manifest"
else
    manifest="$src/ports/unix/at_frozen_manifest.py"
    echo "package(\"at\", base_path=\"$repo/lib\")" > "$manifest"
fi
if [ -e "$src/lib/mbedtls/library/ssl_tls.c" ]; then
    build=build-at32-tls; tls=""
else
    build=build-at32; tls="MICROPY_PY_SSL=0 MICROPY_SSL_MBEDTLS=0"
fi
[ -z "$plain" ] || build="$build-plain"
make -s -C "$src/mpy-cross" >&2
cd "$src/ports/unix"
rm -rf "$build/frozen_content.c" "$build/frozen_mpy"  # lib/at changed: freeze it again
# shellcheck disable=SC2086
make -s -j2 BUILD="$build" VARIANT=standard MICROPY_FORCE_32BIT=1 MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 \
    $tls FROZEN_MANIFEST="$manifest" >&2
echo "$src/ports/unix/$build/micropython"
