#!/usr/bin/env bash
# The full test suite (`npm test`): static checks, then every node:test file in one run so
# the runner prints one summary. Host and e2e tests boot nspawn hosts and real servers;
# they never skip: a missing prerequisite fails with the command that installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

echo "== typecheck" >&2
tsc --noEmit -p .

echo "== shellcheck" >&2
mapfile -t sh_files < <(git ls-files -co --exclude-standard | while read -r f; do
  [ -f "$f" ] && head -1 "$f" | grep -qE '^#!.*\b(ba)?sh\b' && echo "$f"; done)
shellcheck -S warning "${sh_files[@]}"

echo "== roster check" >&2
node --require ts-node/register/transpile-only tools/roster-check.ts roster.example.yaml roster.yaml

if [ -x scripts/dev/toolchain ] || [ -f scripts/dev/toolchain ]; then
  eval "$(bash scripts/dev/toolchain env)"
fi

mapfile -t files < <(ls tests/unit/*.test.ts tests/tmux/*.test.ts tests/token/*.test.ts tests/host/*.test.ts tests/e2e/*.test.ts 2>/dev/null)
echo "== node:test (${#files[@]} files)" >&2
exec node --require ts-node/register/transpile-only --test --test-concurrency=1 "${files[@]}"
