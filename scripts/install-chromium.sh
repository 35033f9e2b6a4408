#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/web), unless it is already there.
# Idempotent; needs root (or sudo) and the Debian package archive.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "error: $CHROMIUM is missing and apt-get is not available: install Debian's chromium package by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    SUDO="sudo"
  else
    echo "error: $CHROMIUM is missing and installing it needs root: run 'apt-get install -y chromium' as root" >&2
    exit 1
  fi
fi
echo "installing Debian's chromium for the browser tests..." >&2
if ! $SUDO apt-get update -qq || \
   ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; then
  echo "error: could not install chromium with apt-get (is the package archive reachable?)" >&2
  exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "error: the chromium package installed, but $CHROMIUM is still missing" >&2
  exit 1
fi
