#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main demo: baton-echo
# restarted again and again (SIGUSR2) under a load that verifies every byte.
#
# Usage: scripts/demo.sh [demo flags], e.g. --connections=1000 --restarts=50
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)" --target baton-echo baton-restart-demo
exec ./build/apps/restart_demo/baton-restart-demo "$@"
