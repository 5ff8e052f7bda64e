# shellcheck shell=sh
# workstations: Claude's long-lived login for users in setup-token mode (README "Claude logins").
# Managed by workstations; local edits are overwritten on the next deploy. Sourced by login
# shells (sh, bash; zsh through one line in /etc/zsh/zprofile), start-claude.sh, tmux-persist's
# resume and T3's unit, always as the user: it exports the token claude-token-renew keeps in
# ~/.claude-oauth-token (the user's own file, 0600). Without the file it changes nothing.
if [ -n "${HOME:-}" ] && [ -f "$HOME/.claude-oauth-token" ] && [ -r "$HOME/.claude-oauth-token" ]; then
  CLAUDE_CODE_OAUTH_TOKEN=$(head -c 4096 "$HOME/.claude-oauth-token" | tr -d '\r\n')
  export CLAUDE_CODE_OAUTH_TOKEN
fi
