#!/usr/bin/env bash
# Installs the system packages that building llama.cpp needs (cmake, a C++
# compiler, libclang for bindgen), pip for fetching the models, a
# TrueType font for the benchmark charts, and Node.js, npm and Python's
# venv for the MCP servers the tests run (scripts/install-mcp-servers.sh).
set -euo pipefail

missing=()
if command -v dpkg >/dev/null; then
  for pkg in cmake clang libclang-dev g++ fonts-dejavu-core; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
else
  for cmd in cmake clang c++; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
  done
fi
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo)
  else
    echo "missing system packages: ${missing[*]}" >&2
    echo "run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing system packages: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing build tools: ${missing[*]}; install cmake, clang with libclang, a C++ compiler, Python 3 with pip and venv, Node.js with npm and the DejaVu fonts" >&2
  exit 1
fi
