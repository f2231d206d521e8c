#!/usr/bin/env bash
# Installs the MCP servers the tests run against into PREFIX (default
# target/mcp-servers), pinned: mcp-server-time from PyPI into a venv, the
# filesystem and everything servers from npm. Nothing is installed system
# wide, and a prefix that already holds these versions is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-target/mcp-servers}
want="mcp-server-time==2026.10.19 @modelcontextprotocol/server-filesystem@2026.8.31 @modelcontextprotocol/server-everything@2026.8.31"
if [ -f "$prefix/versions" ] && [ "$(cat "$prefix/versions")" = "$want" ]; then
  exit 0
fi
for cmd in python3 npm node; do
  command -v "$cmd" >/dev/null || { echo "the MCP test servers need $cmd (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
echo "installing the MCP test servers into $prefix"
rm -rf "$prefix"
mkdir -p "$prefix"
python3 -m venv "$prefix/py"
"$prefix/py/bin/pip" install --quiet --disable-pip-version-check mcp-server-time==2026.10.19
npm install --prefix "$prefix/npm" --no-audit --no-fund --loglevel=error \
  @modelcontextprotocol/server-filesystem@2026.8.31 @modelcontextprotocol/server-everything@2026.8.31
echo "$want" > "$prefix/versions"
