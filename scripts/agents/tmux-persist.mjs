#!/usr/bin/env node
// @ts-check
/**
 * tmux-persist: roster users' tmux sessions survive reboots, each resuming its Claude
 * conversation.  SPEC §3.4, ../shared/notes/tmux-persistence.md, docs/CONTRACTS.md.
 *
 *   tmux-persist save     one snapshot per roster user (active, tmuxPersist !== false)
 *   tmux-persist restore  recreate the sessions of the last snapshot that are missing
 *   tmux-persist status   per user: last snapshot and what a restore would do (dry run)
 *   tmux-persist snapshots|snapshot|restore-selection|restore-one|history|forget
 *                         the web lobby's verbs (./tmux/lobby.mjs)
 *   tmux-persist import-legacy [USER]   the legacy store's snapshots into ours (./tmux/legacy.mjs)
 *
 * Runs as root (from tmux-persist-save.service / tmux-persist-restore.service). Every tmux
 * command runs as the user, on the user's default socket ($TMUX_TMPDIR or /tmp, then
 * tmux-<uid>/default); tmux computes that path itself because the client runs with the
 * user's uid and a clean environment.
 *
 * How the user's uid is taken
 *   - Queries and all commands sent to an already running server: the tmux client is spawned
 *     with the user's uid/gid (node spawn options; libuv drops supplementary groups). These
 *     clients only talk to the server over its socket, so no extra groups are needed.
 *   - The command that STARTS a user's tmux server (restore, first new-session) goes through
 *     `runuser -u <user> --`: initgroups() gives the server and every pane the user's real
 *     supplementary groups, and pam_limits applies the user's limits. Under systemd (PID 1,
 *     /run/systemd/system exists) it is wrapped in
 *       systemd-run --scope --collect --slice=user-<uid>.slice
 *                   --unit=tmux-persist-<user>-<t>.scope -- runuser ...
 *     so the server lives in its own transient scope and NOT in the cgroup of
 *     tmux-persist-restore.service: the oneshot ending (or being restarted) cannot kill it.
 *     The scope is ordered Before=tmux-persist-save.service, so at shutdown a running save is
 *     stopped before the restored server is killed.
 *     `systemd-run --scope --uid=` is deliberately not used: for scopes it only does
 *     setresuid/setresgid and keeps the caller's supplementary groups. Without systemd (the
 *     local tests) the server is started by runuser directly and simply daemonizes.
 *     Override with --spawn scope|direct.
 *
 * Save asks every user's server at once (one list-panes each), reads /proc once, and writes
 *   the users' snapshot files at once (each still temp + fsync + rename + dir fsync).
 *
 * What a user's server may put into a snapshot (save). The server is the user's (their socket,
 *   binary, config and namespaces: in their own user+pid namespace a stock tmux reports any
 *   host pid as a pane pid), so its answer is input:
 *   - A pane pid counts only while /proc/<pid> is the user's own process: opened once, its
 *     owner and every id of its `Uid:` line the user's before and after the cwd link is read
 *     through that handle (ownCwd). Another user's or root's process (a setuid program in the
 *     pane, or a number a server merely names) gives no cwd and no claude; one log line.
 *   - A pane's cwd is the first of: its claude's cwd, its own pane pid's cwd, tmux's
 *     pane_current_path that is absolute, <= 4095 bytes, without NUL, and that the user may
 *     enter, checked by the kernel as the user (setpriv with the user's uid, gid and groups
 *     runs find: userDirs); else the user's home. A claude whose cwd the user may not enter is
 *     saved as a shell. Root never stats these paths itself, on save or on restore.
 *   - Names (session, group, window) as tmux stores them: <= 256 bytes, no NUL (other control
 *     characters are data and round-trip; the lobby's ^[a-zA-Z0-9_-]{1,32}$ is not applied). A
 *     session whose name breaks that is left out; a window name is not kept (the window comes
 *     back automatically named), a group is dropped, a layout over 16 KiB is dropped; one log
 *     line per user.
 *   - Per user: <= 128 sessions, 512 windows, 1024 panes, and the snapshot file <= 1 MiB
 *     (a realistic one is ~25 KB); list-panes is read up to 8 MiB. A snapshot over a cap is
 *     refused whole with one log line naming the user (exit 1); `last` and the files stay.
 *     Restore does not read a file over 1 MiB, and skips a pane whose cwd the user cannot
 *     enter ("cwd not enterable by the user") or reach ("cwd missing").
 *
 * Claude panes (save)
 *   - One pass over /proc per save reads stat (ppid, start time), cmdline and exe of every
 *     process. A process is claude when Claude's own session file names it (below), else by
 *     argv[0]/exe basename `claude` or `claude.exe` (npm's @anthropic-ai/claude-code/bin/
 *     claude.exe), an exe/argv[0] under `.../claude/versions/<v>` (native installer), or
 *     node/bun running a script named `claude` or `@anthropic-ai/claude-code/cli.js`.
 *     pane_current_command is never used. A claude below another claude is a helper and is
 *     ignored. A claude belongs to the pane whose pane_pid (the user's own process) is its
 *     nearest pane ancestor.
 *   - Session file first: <config dir>/sessions/<pid>.json, which Claude Code (2.1.332
 *     verified) keeps for every running process and rewrites on /clear and /resume. Read only
 *     for a process of that user, from ~/.claude or a CLAUDE_CONFIG_DIR inside the home,
 *     reached from the home without following any symlink, every directory and the file
 *     owned by the user (<= 64 KiB), and used only when its `pid` and `procStart` (field 22 of
 *     /proc/PID/stat, as Claude writes it) are the process's; its `sessionId` is then the
 *     conversation (source "session-file"; "no-transcript" while that conversation has no
 *     transcript yet). A file that fails a check is ignored with a log line. Processes with
 *     a valid session file neither share a project dir with others below nor are their
 *     conversations candidates of another process.
 *   - Otherwise: A = argv `--resume <uuid>`, `--resume=<uuid>`, `-r <uuid>`,
 *     `--session-id <uuid>` of the claude process, or else of the `tmux-persist-resume`
 *     wrapper that restore put above it. Transcript dir D = <CLAUDE_CONFIG_DIR or
 *     ~/.claude>/projects/<slug(cwd)> (CLAUDE_CONFIG_DIR read from /proc/PID/environ, nothing
 *     else is kept from it). C = transcripts in D created (birth time) after the process
 *     started.
 *       * another live claude of the same user uses the same D: A if present, otherwise
 *         status "ambiguous" (the candidates are recorded, nothing is guessed);
 *       * otherwise the most recently written file among C ∪ {A's transcript}. So argv wins
 *         while it is the conversation being written, and a stale argv (after /clear, or a
 *         resume that forked a new file) loses to the newer conversation created since the
 *         process started. Without A this is "the newest transcript created after start"
 *         (newest = last written, so /clear then /resume back to the first is right too);
 *       * no A and C empty: status "no-transcript" (a never-messaged session).
 *
 * State: <state-dir>/<user>/snap-<UTC time>-<rand>.json (JSON, mode 0600, user dirs 0700,
 *   the state dir itself 0700 or 0711 (as the host component creates it), all root-owned), written temp + fsync + rename + dir fsync; `last` is a symlink replaced the
 *   same way. An empty save (no server / no sessions) or a failed one never touches `last`;
 *   a save equal to `last` in everything a restore uses (names, indexes, cwds, layout shape,
 *   conversations; not pids, focus, automatic window names) is dropped; the newest --keep
 *   files are kept plus whatever `last` and `boot` (the snapshot the last restore used)
 *   point to. During shutdown (systemctl is-system-running = stopping) nothing is saved,
 *   checked again right before `last` moves.
 *   Snapshot: {format: "tmux-persist/1", createdAt, host, user, uid, home, socket,
 *   sessions: [{name (as tmux stores it), group, baseIndex? (its base-index; older
 *   snapshots lack it), windows: [{index, name, autoName, layout,
 *   active, panes: [{index, active, cwd, pid, claude: null | {pid, startedAt, uuid, status:
 *   ok|ambiguous|no-transcript, source: session-file|argv|restore-wrapper|transcript,
 *   transcript, configDir, cwd, identifiedBy?: session-file|exe-argv, note?, candidates?}}]}]}]}. JSON strings carry tabs, newlines, quotes
 *   and unicode unchanged.
 *
 * Restore: sessions that exist (by name) are left alone; a conversation already running (any
 *   live claude of the user, same rules) is not started twice (the pane comes back as a
 *   shell); a pane whose cwd (checked as the user) or transcript is gone is skipped with a log line and a session
 *   left with no pane is skipped; ambiguous / never-messaged claude panes come back as shells.
 *   Claude panes run `/bin/sh -c '<claude-bin> --resume <uuid>; exec $SHELL -l'` (with
 *   `-e CLAUDE_CONFIG_DIR=` when the conversation lives elsewhere), so a shell remains when
 *   claude exits. The first session starts the server; there is no bootstrap session.
 *   Windows keep their index and (unless automatic-rename was on) their name; panes are
 *   split in order and the saved layout is applied when every pane came back; grouped
 *   sessions are recreated grouped. Names go back through tmux's own escaping (session names
 *   are un-vis'ed, '#' doubled, a trailing ';' escaped) so they round-trip exactly.
 *   Batched: all of a user's sessions are made by ONE tmux client (one argv command list,
 *   ';' as arguments of their own; cut at tmux's 16 KB message limit), which is also the one
 *   that starts the server; one more when a session name starts with '$' (tmux reads
 *   `=$…` as an id) or the snapshot has no baseIndex. A list that fails part-way is
 *   continued from the step that failed, that session one client per step (the per-pane
 *   path, also --per-pane), the others batched; see "restore: tmux command lists" below.
 *   Users are restored several at once (their servers are independent). `restore done`
 *   logs tmuxCalls=, the clients started for the user. No client at all is started for a
 *   user whose socket does not exist (after a reboot).
 *
 * Logs: stderr, one line per event, values JSON-quoted when not plain; with <N> syslog
 *   priority prefixes when JOURNAL_STREAM is set. environ is read only for CLAUDE_CONFIG_DIR
 *   and never logged.
 *
 * Exit codes:
 *   0   ok, nothing to do, or nothing saved because every server was down/empty
 *   1   at least one user failed (the others were processed)
 *   2   usage error
 *   3   fatal: not root, users file unreadable/invalid, state dir unusable, lock timeout
 *       (restore), or /proc unreadable
 *   75  skipped on purpose (save): shutdown in progress, restore running, or another run
 *       holds the lock; the units treat it as success (SuccessExitStatus=75)
 *
 * Modules (./tmux/, loaded by root: relative imports only, never through PATH):
 *   core.mjs     exit codes, rules, errors, the logger, small helpers
 *   names.mjs    Claude's project slug and tmux's name escapes (pure)
 *   client.mjs   the programs root runs (trustedBin, ROOT_ENV), tmux and path checks run as a user
 *   limits.mjs   the caps on what a user's server may put into a snapshot (pure)
 *   proc.mjs     the /proc scan, Claude detection, transcripts and the uuid rule
 *   users.mjs    the roster users (../common/users.mjs) checked against passwd
 *   store.mjs    snapshot files, `last`/`boot`, pruning, the run lock
 *   save.mjs     tmux-persist save
 *   plan.mjs     the restore planner; tmux-persist status
 *   restore.mjs  tmux-persist restore: tmux command lists
 *   legacy.mjs   import-legacy: the legacy tool's snapshots carried over
 *   lobby.mjs    the web lobby's verbs: the picker, selections, tombstones, history
 *   cli.mjs      options, usage, main
 *
 * No npm dependencies; Node >= 18 (Debian bookworm).
 */

export { EXIT, SNAPSHOT_FORMAT } from './tmux/core.mjs';
export { ROOT_PATH, ROOT_ENV, trustedBin } from './tmux/client.mjs';
export { slugify, unvis, tmuxArg, tmuxLiteral } from './tmux/names.mjs';
export { argvUuid, isClaudeProcess, decideUuid, readOwnedDir, confinedConfigDir } from './tmux/proc.mjs';
export { LIMITS, usableName, usablePath, screenRows } from './tmux/limits.mjs';
export { writeFileAtomic } from './tmux/store.mjs';
export { usage, parseArgs, main } from './tmux/cli.mjs';
import { isMain } from './common/main.mjs';
import { main } from './tmux/cli.mjs';

if (isMain(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
