#!/usr/bin/env bash
# The five-minute tour on the embedded defaults: pack, push, change a prompt, push again, diff,
# pull and verify the example sentiment model, then run the pulled model. Nothing to install:
# everything lives in a throw-away MODELCTL_HOME (set MODELCTL_HOME to keep it).
set -euo pipefail
cd "$(dirname "$0")/.."
modelctl() { node bin/run.js "$@"; }
export MODELCTL_HOME="${MODELCTL_HOME:-$(mktemp -d -t modelctl-demo-XXXXXX)}"
work="$(mktemp -d -t modelctl-demo-work-XXXXXX)"
trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step modelctl bundle pack bundles/example
modelctl bundle pack bundles/example

step modelctl bundle push bundles/example
modelctl bundle push bundles/example

step "# change one prompt and push it as 1.0.1: only that component is uploaded"
cp -r bundles/example "$work/sentiment"
printf 'Verdict: {{label}} ({{confidence}}). Words that mattered: {{top_tokens}}.\n' >"$work/sentiment/prompts/explain.txt"
modelctl bundle push "$work/sentiment" --version 1.0.1

step modelctl bundle list
modelctl bundle list

step modelctl bundle diff sentiment@1.0.0 sentiment@1.0.1
modelctl bundle diff sentiment@1.0.0 sentiment@1.0.1

step modelctl bundle pull sentiment@1.0.1 --output "$work/pulled"
modelctl bundle pull sentiment@1.0.1 --output "$work/pulled"

step modelctl bundle verify "$work/pulled"
modelctl bundle verify "$work/pulled"

step "# serve a prediction from the pulled bundle (bundles/example/predict.mjs loads any bundle directory)"
node --input-type=module -e "
  const m = await import('./bundles/example/predict.mjs');
  const model = await m.loadModel(process.argv[1]);
  console.log(JSON.stringify(m.predict(model, 'I loved every minute of it'), null, 2));
" "$work/pulled"

printf '\nStore: %s\n' "file://$MODELCTL_HOME/store"
