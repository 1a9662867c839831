#!/usr/bin/env bash
# Map the action's inputs to one modelctl command line. modelctl itself writes the step outputs,
# annotations and job summary (it knows it runs in Actions); this script only adds exit-code.
set -uo pipefail
modelctl="$(command -v modelctl || echo "$RUNNER_TEMP/modelctl-bin/modelctl")"
args=()
add() { if [ -n "$2" ]; then args+=("$1" "$2"); fi; }
need() { if [ -z "$2" ]; then echo "::error title=modelctl action::input '$1' is required for command '$INPUT_COMMAND'"; exit 2; fi; }

case "$INPUT_COMMAND" in
  push)
    args=(bundle push "${INPUT_PATH:-.}")
    add --version "$INPUT_VERSION"
    ;;
  deploy)
    need ref "$INPUT_REF"
    args=(deploy "$INPUT_REF")
    add --canary "$INPUT_CANARY"
    add --steps "$INPUT_STEPS"
    add --interval "$INPUT_INTERVAL"
    add --shadow "$INPUT_SHADOW"
    add --shadow-duration "$INPUT_SHADOW_DURATION"
    if [ "$INPUT_SHADOW_ONLY" = "true" ]; then args+=(--shadow-only); fi
    ;;
  rollback)
    need model "$INPUT_MODEL"
    args=(rollback "$INPUT_MODEL")
    add --to "$INPUT_TO"
    ;;
  gates-check)
    need gates-file "$INPUT_GATES_FILE"
    args=(gates check --file "$INPUT_GATES_FILE")
    while IFS= read -r line; do
      line="${line#"${line%%[![:space:]]*}"}"
      if [ -n "$line" ]; then args+=(--var "$line"); fi
    done <<<"$INPUT_VARS"
    ;;
  promote | abort | status)
    need model "$INPUT_MODEL"
    args=("$INPUT_COMMAND" "$INPUT_MODEL")
    ;;
  *)
    echo "::error title=modelctl action::unknown command '$INPUT_COMMAND' (push, deploy, rollback, promote, abort, status, gates-check)"
    exit 2
    ;;
esac

if [ "$INPUT_COMMAND" != "push" ] && [ "$INPUT_COMMAND" != "gates-check" ]; then
  add --target "$INPUT_TARGET"
  if [ -n "$INPUT_KUBE_CONTEXT" ]; then args+=(--context "$INPUT_KUBE_CONTEXT"); fi
  if [ -n "$INPUT_KUBECONFIG" ]; then args+=(--kubeconfig "$INPUT_KUBECONFIG"); fi
  if [ -n "$INPUT_NAMESPACE" ]; then args+=(--namespace "$INPUT_NAMESPACE"); fi
fi
if [ "$INPUT_COMMAND" != "gates-check" ]; then
  add --store "$INPUT_STORE"
  if [ "$INPUT_S3_PATH_STYLE" = "true" ]; then args+=(--s3-path-style); fi
fi
# shellcheck disable=SC2206 # extra args are split on whitespace on purpose
if [ -n "$INPUT_ARGS" ]; then args+=($INPUT_ARGS); fi

echo "modelctl ${args[*]}"
"$modelctl" "${args[@]}"
code=$?
echo "exit-code=$code" >>"$GITHUB_OUTPUT"
if [ "$code" -eq 3 ] || [ "$code" -eq 4 ]; then
  if [ "$INPUT_FAIL_ON_ROLLBACK" != "true" ]; then exit 0; fi
fi
exit "$code"
