#!/usr/bin/env bash
# Build modelctl from the repository this action lives in (the action's ref pins the CLI) and put
# `modelctl` on PATH for the rest of the job. Skipped when an earlier step of the job did it.
set -euo pipefail
if command -v modelctl >/dev/null 2>&1 && [ "${MODELCTL_ACTION_INSTALLED:-}" = "1" ]; then
  exit 0
fi
root="$(cd "$GITHUB_ACTION_PATH/../../.." && pwd)"
echo "::group::Install modelctl from $root"
(cd "$root" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
mkdir -p "$RUNNER_TEMP/modelctl-bin"
ln -sf "$root/bin/run.js" "$RUNNER_TEMP/modelctl-bin/modelctl"
echo "$RUNNER_TEMP/modelctl-bin" >>"$GITHUB_PATH"
echo "MODELCTL_ACTION_INSTALLED=1" >>"$GITHUB_ENV"
"$root/bin/run.js" --version
echo "::endgroup::"
