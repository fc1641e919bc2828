#!/usr/bin/env bash
# Set up a development environment on a fresh Debian machine: system packages the tests need
# (the Go toolchain that checks wire compatibility; a Docker engine with its test image, unless
# NUNET_SKIP_DOCKER=1; QEMU and the vm executor's guest, unless NUNET_SKIP_VM=1), a virtualenv
# in .venv with the project installed editable plus its dev tools. Leaves the CLI at
# .venv/bin/nunet. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v gcc >/dev/null 2>&1 || need_apt+=(build-essential python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# A Docker engine and the local test image (the docker executor is tested on a real engine).
if [ "${NUNET_SKIP_DOCKER:-0}" != 1 ]; then
    if [ "$(id -u)" -eq 0 ]; then ./scripts/docker.sh; else sudo ./scripts/docker.sh; fi
fi

# --- VM guest (the vm executor) ----------------------------------------------------------------
# QEMU (qemu-system-x86, busybox-static: apt only when missing) and the default guest, a Debian
# cloud kernel plus a busybox initramfs built once into ~/.cache/nunet/vm-guest (or
# $NUNET_VM_GUEST_DIR) by scripts/vm-guest.sh; a cached guest costs no apt call.
# NUNET_SKIP_VM=1 skips it.
if [ "${NUNET_SKIP_VM:-0}" != 1 ]; then
    ./scripts/vm-guest.sh >/dev/null
fi
# --- end of VM guest -----------------------------------------------------------------------------

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "setup: installing nunet-dms and dev tools into .venv"
.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
# --- js-libp2p interop packages (tests/interop) -------------------------------------------------
# Exact versions from tests/interop/package-lock.json, installed with `npm ci` into
# tests/interop/node_modules; skipped while the lockfile's hash matches the last install.
# Without node the interop tests skip; with node, a missing install makes them fail.
if command -v node >/dev/null 2>&1; then
    if ! command -v npm >/dev/null 2>&1; then
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        echo "setup: installing npm"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null
    fi
    lock_hash="$(sha256sum tests/interop/package-lock.json | cut -d' ' -f1)"
    stamp=tests/interop/node_modules/.nunet-lock-sha256
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ]; then
        echo "setup: js interop packages up to date"
    else
        echo "setup: installing js interop packages (npm ci)"
        (cd tests/interop && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
        echo "$lock_hash" >"$stamp"
    fi
else
    echo "setup: node not found: the js-libp2p interop tests will be skipped"
fi
# --- end of js-libp2p interop packages -----------------------------------------------------------

echo "setup: done; the CLI is .venv/bin/nunet ($(.venv/bin/nunet version))"
