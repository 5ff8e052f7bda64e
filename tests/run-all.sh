#!/usr/bin/env bash
# The full test suite (`npm test`): static checks, then every node:test file in one run so
# the runner prints one summary. Host and e2e tests boot nspawn hosts and real servers;
# they never skip: a missing prerequisite fails with the command that installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

echo "== typecheck" >&2
tsc --noEmit -p .

echo "== typecheck the host agents (checkJs, strict)" >&2
tsc -p tsconfig.agents.json

echo "== lint (eslint) and format (prettier --check) of the TypeScript" >&2
eslint .
prettier --check --log-level warn "**/*.ts"

echo "== shellcheck" >&2
mapfile -t sh_files < <(git ls-files -co --exclude-standard | while read -r f; do
  [ -f "$f" ] && head -1 "$f" | grep -qE '^#!.*\b(ba)?sh\b' && echo "$f"; done)
shellcheck -S warning "${sh_files[@]}"

echo "== roster check" >&2
node --require ts-node/register/transpile-only tools/roster-check.ts roster.example.yaml roster.yaml

if [ -x dev/toolchain ] || [ -f dev/toolchain ]; then
  eval "$(bash dev/toolchain env)"
fi

# The engine e2e suites (tests/e2e/*.e2e.test.ts) run always: without the Pulumi CLI or a
# resource plugin they fail, naming what is missing and how to build it (bash dev/toolchain
# status says where each part comes from).
files=(tests/unit/*.test.ts tests/tmux/*.test.ts tests/claude/*.test.ts tests/token/*.test.ts tests/host/*.test.ts tests/kube/*.test.ts tests/forgejo/*.test.ts)
# On the VM test host (Debian trixie, systemd 257, cgroup v2; each file restores a saved booted
# VM, README "Test hosts"): the harness (a boot that fails shows its serial log), the test-host
# suite with a real kernel reboot, and containment (limits on cgroup v2). The account/home/unit
# and tmux-persist host suites on the VM cost about 40 min of emulated CPU under TCG: they run
# in `npm run test:vm`, not here (README "Test hosts").
files+=(tests/vm/vm-harness.vm.test.ts tests/vm/testhost.vm.test.ts tests/vm/limits.vm.test.ts)
files+=(tests/e2e/*.test.ts)
# This repository's workflows on a real Woodpecker (server, local agent, Gitea): tests/woodpecker.
shopt -s nullglob
files+=(tests/woodpecker/*.test.ts)
shopt -u nullglob
# The run's temp files go with it: a run-private TMPDIR (sticky and world-writable like /tmp,
# since throwaway users write there too), listed if a test left anything in it, then removed.
# Before, a full run left about 630 entries and 470 MB in /tmp, and every run added as much.
run_tmp="$(mktemp -d "${TMPDIR:-/tmp}/ws-test-run-XXXXXX")"
chmod 1777 "$run_tmp"
cleanup() {
  local left
  left="$(find "$run_tmp" -mindepth 1 -maxdepth 1 -printf '%f\n' | sed -E 's/[0-9A-Za-z_]{6,}$/*/' | sort | uniq -c)"
  [ -z "$left" ] || printf '== left in the temp dir by the tests (removed now):\n%s\n' "$left" >&2
  rm -rf "$run_tmp"
}
trap cleanup EXIT
echo "== node:test (${#files[@]} files)" >&2
TMPDIR="$run_tmp" node --require ts-node/register/transpile-only --test --test-concurrency=1 "${files[@]}"
