#!/usr/bin/env bash
# Build a CPython from Debian's source packages into a cache prefix outside the clone:
#   scripts/build-python.sh 3.13      -> prints the interpreter's path
# Does nothing (but print the path) when that interpreter is already built.
# Uses a deb-src entry for Debian trixie (signed by the archive keyring already installed).
set -euo pipefail
VERSION="${1:?usage: build-python.sh VERSION (e.g. 3.13)}"
CACHE="${PROFILER_PYTHON_CACHE:-$HOME/.cache/profiler-pythons}"
PREFIX="$CACHE/$VERSION"
PYTHON="$PREFIX/bin/python$VERSION"
if [ -x "$PYTHON" ] && "$PYTHON" -c "import ssl, venv, ensurepip" >/dev/null 2>&1; then
  echo "$PYTHON"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SOURCES=/etc/apt/sources.list.d/profiler-trixie-src.sources
if [ ! -f "$SOURCES" ]; then
  # The same Debian mirror the machine already uses, for trixie's sources.
  MIRROR="$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ' || true)"
  [ -n "$MIRROR" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
  printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$MIRROR" > "$SOURCES"
fi
apt-get update -qq >&2
apt-get install -y -qq build-essential libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev \
  libreadline-dev libncurses-dev uuid-dev dpkg-dev >/dev/null
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
apt-get source --download-only "python$VERSION" >&2
tar -xf "$(ls python"$VERSION"_*.orig.tar.* | grep -v "\.asc$" | head -1)"
SRC="$(find . -maxdepth 1 -type d -name 'Python-*' | head -1)"
cd "$SRC"
./configure --prefix="$PREFIX" --with-ensurepip=install >&2
make -j"$(nproc)" >&2
make install >&2
echo "$PYTHON"
