#!/usr/bin/env bash
# Everything the README's two commands need on a machine with nothing but Python; shared by the Makefile and .ci/run.
#   tools/bootstrap.sh venv      .venv with the package and its dev extras (torch pinned to the CPU wheel by constraints.txt)
#   tools/bootstrap.sh browser   Debian's chromium and chromium-driver, for the docs test in a headless browser
# The venv step also makes sure of a C++ toolchain (g++, cmake, ninja): the native layer compiles on first use and its
# tests build the stand-alone C++ program.
# System packages come from apt-get, as root or through sudo; where neither is possible it stops and says what to run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

apt_install() {  # apt_install PACKAGE... : install Debian packages, or explain exactly how
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=sudo
    else
      echo "bootstrap: this needs the Debian packages: $*" >&2
      echo "bootstrap: install them (as root) with:  apt-get update && apt-get install -y $*" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: no apt-get here; install the equivalents of the Debian packages $* with your package manager" >&2
    exit 1
  fi
  echo "bootstrap: apt-get install $*" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

case "${1:-}" in
  venv)
    if [ ! -x .venv/bin/python ]; then
      # Debian splits venv/ensurepip into python3-venv
      if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        ver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt_install "python${ver}-venv"
        "$PYTHON" -m venv .venv
      fi
    fi
    # nbdev-export rewrites pyproject.toml (same content, new mtime): reinstall only when the requirements changed
    stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
    if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]; then
      .venv/bin/python -m pip install --quiet --upgrade pip
      .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
    fi
    echo "$stamp" > .venv/.installed
    missing=()
    command -v c++ >/dev/null 2>&1 || missing+=(g++)
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi ;;
  browser)
    missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi ;;
  *) echo "usage: tools/bootstrap.sh venv|browser" >&2; exit 2 ;;
esac
