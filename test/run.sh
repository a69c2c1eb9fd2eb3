#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need, builds, runs vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
npm ci --no-audit --no-fund
npm run build
npx vitest run "$@"
