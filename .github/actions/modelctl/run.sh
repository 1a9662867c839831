#!/usr/bin/env bash
# Map the action's inputs to one modelctl command line and run it. modelctl itself writes the step
# outputs, annotations and job summary (it knows it runs in Actions); this script adds exit-code.
#
# - An empty input changes nothing: no flag, no variable, so the job's MODELCTL_* environment and
#   modelctl.yaml stay in force.
# - Credentials in the command line are masked before anything is printed, and the line printed
#   is redacted.
# - Cancellation: the runner sends SIGINT to this process (the step runs `exec bash run.sh`),
#   SIGTERM about 7.5 s later, then kills it. modelctl runs as a child, so each signal is passed
#   on to it and this script waits until modelctl has really exited: on the first signal a deploy
#   aborts to stable, writes its outputs (outcome=aborted) and exits 10.
# shellcheck disable=SC2153 # the INPUT_* variables come from the env: of the step in action.yml
set +e -uo pipefail

fail() {
  echo "::error title=modelctl action::$1"
  exit 2
}
add() { if [ -n "$2" ]; then args+=("$1" "$2"); fi; }
need() { if [ -z "$2" ]; then fail "input '$1' is required for command '$INPUT_COMMAND'"; fi; }
# A boolean input: '' (leave the default), true or false.
bool() {
  case "$2" in
    '' | true | false) ;;
    *) fail "input '$1' must be true, false or empty, got '$2'" ;;
  esac
}

bool shadow-only "$INPUT_SHADOW_ONLY"
bool s3-path-style "$INPUT_S3_PATH_STYLE"
bool fail-on-rollback "$INPUT_FAIL_ON_ROLLBACK"

args=()
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
      line="${line%"${line##*[![:space:]]}"}"
      if [ -n "$line" ]; then args+=(--var "$line"); fi
    done <<<"$INPUT_VARS"
    ;;
  promote | abort | status)
    need model "$INPUT_MODEL"
    args=("$INPUT_COMMAND" "$INPUT_MODEL")
    ;;
  *)
    fail "unknown command '$INPUT_COMMAND' (push, deploy, rollback, promote, abort, status, gates-check)"
    ;;
esac

if [ "$INPUT_COMMAND" != "push" ] && [ "$INPUT_COMMAND" != "gates-check" ]; then
  add --target "$INPUT_TARGET"
  add --context "$INPUT_KUBE_CONTEXT"
  add --kubeconfig "$INPUT_KUBECONFIG"
  add --namespace "$INPUT_NAMESPACE"
fi
if [ "$INPUT_COMMAND" != "gates-check" ]; then
  add --store "$INPUT_STORE"
  # A boolean flag cannot say false: an explicit false goes through the variable instead.
  if [ "$INPUT_S3_PATH_STYLE" = "true" ]; then args+=(--s3-path-style); fi
  if [ "$INPUT_S3_PATH_STYLE" = "false" ]; then export MODELCTL_S3_PATH_STYLE=false; fi
fi
if [ -n "$INPUT_PROMETHEUS_URL" ]; then export MODELCTL_PROMETHEUS_URL="$INPUT_PROMETHEUS_URL"; fi
# Extra arguments: split on blanks and newlines, never glob-expanded.
if [ -n "$INPUT_ARGS" ]; then
  read -r -d '' -a extra <<<"$INPUT_ARGS"
  args+=("${extra[@]}")
fi

# Credentials in the command line: user info of a URL (scheme://user:password@host, or a lone
# token as user), secret-looking query parameters and name=value words. Each is masked before
# anything is printed, and the printed line shows *** in its place.
shopt -s nocasematch
secret_name='(password|passwd|pwd|secret|token|access_token|api[-_]?key|key|sig|signature|credential|auth|x-amz-signature|x-amz-credential|x-amz-security-token)'
shown=()
for word in "${args[@]}"; do
  redacted="$word"
  if [[ "$word" =~ ^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@]+)@(.*)$ ]]; then
    userinfo="${BASH_REMATCH[2]}"
    secret="${userinfo#*:}"
    echo "::add-mask::$secret"
    redacted="${BASH_REMATCH[1]}***@${BASH_REMATCH[3]}"
  fi
  # ?name=value / &name=value in a URL, name=value as a word (--var token=…).
  while [[ "$redacted" =~ (^|[?&])$secret_name=([^\&*][^\&]*) ]]; do
    value="${BASH_REMATCH[3]}"
    echo "::add-mask::$value"
    redacted="${redacted/"${BASH_REMATCH[2]}=$value"/"${BASH_REMATCH[2]}=***"}"
  done
  shown+=("$redacted")
done
shopt -u nocasematch

modelctl="$(command -v modelctl || echo "$RUNNER_TEMP/modelctl-bin/modelctl")"
echo "modelctl ${shown[*]}"

"$modelctl" "${args[@]}" &
child=$!
trap 'kill -s INT "$child" 2>/dev/null' INT
trap 'kill -s TERM "$child" 2>/dev/null' TERM
# A trapped signal cuts `wait` short (status > 128) while modelctl is still running: wait again
# until it has exited, then take its own status (bash keeps it for the pid).
wait "$child"
while [ -n "$(jobs -rp)" ]; do wait "$child"; done
wait "$child"
code=$?
trap - INT TERM

echo "exit-code=$code" >>"$GITHUB_OUTPUT"
# fail-on-rollback: false lets a rolled-back (3) or held (4) deploy or rollback pass the step.
# gates-check reports fail / inconclusive with the same codes: those always fail the step.
case "$INPUT_COMMAND" in
  deploy | rollback)
    if { [ "$code" -eq 3 ] || [ "$code" -eq 4 ]; } && [ "$INPUT_FAIL_ON_ROLLBACK" = "false" ]; then
      echo "modelctl exited $code (rolled back or held); fail-on-rollback is false: the step passes"
      exit 0
    fi
    ;;
esac
exit "$code"
