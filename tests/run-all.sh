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

# Two lanes, each one file at a time, side by side (the machine has 2 cores; one lane left one
# idle about half the time). Lane 1: the files that boot an nspawn host or run the engine
# against one, and the unit tests; lane 2: everything else (the VM, and the suites that make
# throwaway users and servers on this machine). What two files running at once could share is
# kept apart: each nspawn host starts from a cgroup of its own (dev/testhost/cgroup.ts), ports
# are free ports, dirs and throwaway user names are per process and random, and the throwaway
# users on this machine are all made in lane 2 (dev/tmux.ts removes a deleted one's /tmp
# entries by what it listed before userdel, not by uid). The split is by measured
# time (README "Testing"); WORKSTATIONS_TEST_LANES=1 runs everything in one lane.
lane1=()
lane2=()
for f in "${files[@]}"; do
  case "$f" in
    tests/host/web-terminal.*) lane2+=("$f") ;;
    tests/unit/* | tests/host/* | tests/e2e/engine.e2e.* | tests/e2e/cut.e2e.* | tests/e2e/takeover.e2e.* | tests/e2e/upgrade.e2e.* | tests/woodpecker/pipelines.*) lane1+=("$f") ;;
    *) lane2+=("$f") ;;
  esac
done
if [ "${WORKSTATIONS_TEST_LANES:-2}" = 1 ]; then
  lane1=("${files[@]}")
  lane2=()
fi

# The run's temp files go with it: a run-private TMPDIR (sticky and world-writable like /tmp,
# since throwaway users write there too), listed if a test left anything in it, then removed.
# Before, a full run left about 630 entries and 470 MB in /tmp, and every run added as much.
run_tmp="$(mktemp -d "${TMPDIR:-/tmp}/ws-test-run-XXXXXX")"
chmod 1777 "$run_tmp"
logs="$(mktemp -d "${TMPDIR:-/tmp}/ws-test-lanes-XXXXXX")"
cleanup() {
  local left
  left="$(find "$run_tmp" -mindepth 1 -maxdepth 1 -printf '%f\n' | sed -E 's/[0-9A-Za-z_]{6,}$/*/' | sort | uniq -c)"
  [ -z "$left" ] || printf '== left in the temp dir by the tests (removed now):\n%s\n' "$left" >&2
  rm -rf "$run_tmp" "$logs"
}
trap cleanup EXIT

# One lane: node:test over its files, one at a time, in the background; its TAP (and the tests'
# stderr) goes to a log.
pids=()
start_lane() {
  local n="$1"
  shift
  [ "$#" -gt 0 ] || return 0
  echo "== node:test lane $n ($# files), TAP in $logs/lane-$n.tap while it runs" >&2
  TMPDIR="$run_tmp" node --require ts-node/register/transpile-only --test --test-concurrency=1 "$@" >"$logs/lane-$n.tap" 2>&1 &
  pids[n]=$!
}
start_lane 1 "${lane1[@]}"
start_lane 2 "${lane2[@]+"${lane2[@]}"}"
trap 'kill "${pids[@]}" 2>/dev/null; exit 130' INT TERM
failed=()
for n in "${!pids[@]}"; do
  wait "${pids[n]}" || failed+=("lane $n exit $?")
done
# Each lane's output whole, one after the other, then what each lane's runner said at the end.
for n in 1 2; do
  [ -f "$logs/lane-$n.tap" ] || continue
  echo "== node:test lane $n" >&2
  cat "$logs/lane-$n.tap"
done
for n in 1 2; do
  [ -f "$logs/lane-$n.tap" ] || continue
  printf '== lane %s: %s\n' "$n" "$(grep -E '^# (tests|pass|fail|duration_ms) ' "$logs/lane-$n.tap" | tr '\n' ' ')" >&2
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "== FAILED: ${failed[*]} (the failing tests are the 'not ok' lines above)" >&2
  exit 1
fi
