#!/usr/bin/env bash
# start-claude.sh: managed by workstations; local edits are overwritten on the next deploy.
# Shows renewal notices, freshens ~/code (at most 15 s, never blocking), then runs claude
# (with the long-lived login in setup-token mode: README "Claude logins").
set -euo pipefail
# shellcheck source=/dev/null
if [ -r /etc/profile.d/workstations-claude-token.sh ]; then . /etc/profile.d/workstations-claude-token.sh; fi
notice="$HOME/.claude-token-renew.notice"
if [ -s "$notice" ]; then cat "$notice" >&2; fi
if { [ -d "$HOME/code/.git" ] || compgen -G "$HOME/code/*/.git" >/dev/null; } && command -v workstations-refresh-clone >/dev/null 2>&1; then
  timeout -k 2 15 workstations-refresh-clone "$HOME/code" || echo "start-claude: ~/code not refreshed (offline or timed out after 15s)" >&2
fi
exec claude "$@"
