#!/usr/bin/env bash
# Put `modelctl` on PATH for the rest of the job, the version the action's ref pins.
#
#   install.sh plan     decide how (step outputs: setup-node, mode, version, prefix, cache-key)
#   install.sh install  do it (MODELCTL_INSTALL_MODE / _VERSION / _PREFIX from the plan)
#
# Modes:
#   installed  an earlier use of the action in this job already did it: nothing to do.
#   npm        the action runs from a version tag (v1.2.0, v1.2, v1): install the published
#              modelctl@<package.json version> into a prefix that actions/cache keeps between runs.
#              A version that is not on the registry (npm ETARGET / E404: the release workflow has
#              not published it yet) falls back to `source` with a warning; any other npm failure
#              fails the step.
#   source     any other ref (a branch, a commit, a local `./` action): `npm ci && npm run build`
#              in the action's own checkout.
set -euo pipefail

root="$(cd "$GITHUB_ACTION_PATH/../../.." && pwd)"
out() { echo "$1=$2" >>"$GITHUB_OUTPUT"; }

# The action's ref: github.action_ref, else the ref directory the runner checked the action out
# into (<runner>/_work/_actions/<owner>/<repo>/<ref>/); empty for a local action.
action_ref() {
  if [ -n "${MODELCTL_ACTION_REF:-}" ]; then
    echo "$MODELCTL_ACTION_REF"
  elif [[ "$root" == */_actions/*/*/* ]]; then
    basename "$root"
  fi
}

package_version() {
  sed -n 's/^  "version": "\(.*\)",$/\1/p' "$root/package.json" | head -n 1
}

plan() {
  # modelctl needs Node.js >= 22; the job's own one is kept when it is recent enough.
  local major
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if [ "$major" -lt 22 ]; then out setup-node true; else out setup-node false; fi
  if [ "${MODELCTL_ACTION_INSTALLED:-}" = "1" ] && command -v modelctl >/dev/null 2>&1; then
    out mode installed
    return
  fi
  local ref version
  ref="$(action_ref)"
  version="$(package_version)"
  # A version tag: v1.2.3 (exact), v1.2 or v1 (a moving major/minor tag over a release).
  if [[ "$ref" =~ ^v([0-9]+)(\.([0-9]+))?(\.([0-9]+))?$ ]] && [ -n "$version" ]; then
    local tag="${ref#v}"
    # The tag must name the version the checkout holds: v1.2.0 → 1.2.0, v1 → 1.x.y.
    if [ "$version" != "$tag" ] && [[ "$version" != "$tag".* ]]; then
      echo "::error title=modelctl action::the action ref $ref does not match modelctl $version in its package.json: the tag points at the wrong commit"
      exit 2
    fi
    local prefix="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:?}}/modelctl/$version"
    out mode npm
    out version "$version"
    out prefix "$prefix"
    out cache-key "modelctl-${RUNNER_OS:-Linux}-${RUNNER_ARCH:-X64}-node24-$version"
    echo "modelctl $version from npm (action ref $ref)"
  else
    out mode source
    out version "$version"
    echo "modelctl built from the action's checkout (action ref ${ref:-local}: not a version tag)"
  fi
}

from_source() {
  echo "::group::Build modelctl from $root"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
  mkdir -p "$RUNNER_TEMP/modelctl-bin"
  ln -sf "$root/bin/run.js" "$RUNNER_TEMP/modelctl-bin/modelctl"
  echo "$RUNNER_TEMP/modelctl-bin" >>"$GITHUB_PATH"
  echo "::endgroup::"
  finish "$RUNNER_TEMP/modelctl-bin/modelctl"
}

from_npm() {
  local version="$MODELCTL_INSTALL_VERSION" prefix="$MODELCTL_INSTALL_PREFIX"
  if [ -x "$prefix/bin/modelctl" ] && [ "$("$prefix/bin/modelctl" --version 2>/dev/null | cut -d' ' -f1)" = "modelctl/$version" ]; then
    echo "modelctl $version restored from the cache ($prefix)"
  else
    echo "::group::npm install -g modelctl@$version"
    local log
    log="$(mktemp)"
    if ! npm install -g --prefix "$prefix" --no-audit --no-fund --loglevel=error "modelctl@$version" 2>&1 | tee "$log"; then
      echo "::endgroup::"
      if grep -Eq 'code (ETARGET|E404)' "$log"; then
        rm -f "$log"
        echo "::warning title=modelctl action::modelctl@$version is not on the npm registry (not published yet?): building it from the action's checkout instead"
        from_source
        return
      fi
      rm -f "$log"
      echo "::error title=modelctl action::npm install -g modelctl@$version failed (see the log above)"
      exit 1
    fi
    rm -f "$log"
    echo "::endgroup::"
  fi
  echo "$prefix/bin" >>"$GITHUB_PATH"
  finish "$prefix/bin/modelctl"
}

finish() {
  echo "MODELCTL_ACTION_INSTALLED=1" >>"$GITHUB_ENV"
  "$1" --version
}

case "${1:-}" in
  plan) plan ;;
  install)
    case "${MODELCTL_INSTALL_MODE:-}" in
      installed) echo "modelctl already installed by an earlier step: $(modelctl --version)" ;;
      npm) from_npm ;;
      source) from_source ;;
      *) echo "::error title=modelctl action::unknown install mode '${MODELCTL_INSTALL_MODE:-}' (expected installed, npm or source)"; exit 2 ;;
    esac
    ;;
  *) echo "usage: install.sh plan|install" >&2; exit 2 ;;
esac
