// @ts-check
/**
 * tmux-persist: what a user's tmux server may put into a snapshot. The server is the user's
 * (their socket, their build, their namespaces), so everything it answers is the user's input
 * to root: names and paths are kept only within their caps, the counts per user and each
 * snapshot's size are bounded, and a snapshot over a bound is refused whole (the last good
 * one stays). Pure; the numbers are in LIMITS.
 */

/** @typedef {import('./client.mjs').PaneRow} PaneRow */

export const LIMITS = Object.freeze({
  /** a session, group or window name as tmux stores it (bytes) */
  nameBytes: 256,
  /** a cwd (bytes): PATH_MAX - 1, the longest path chdir accepts */
  pathBytes: 4095,
  /** a window layout (bytes); tmux's own need about 20 per pane */
  layoutBytes: 16 << 10,
  /** per user and snapshot */
  sessions: 128,
  windows: 512,
  panes: 1024,
  /** one snapshot file (bytes), on save and on restore */
  snapshotBytes: 1 << 20,
  /** the answer of one user's list-panes (bytes) root reads at most */
  listBytes: 8 << 20,
  /** candidate conversations recorded for an ambiguous claude pane */
  candidates: 16,
});

/** @param {string} s */
const bytes = (s) => Buffer.byteLength(s, 'utf8');

/**
 * A name root keeps: at most LIMITS.nameBytes, no NUL (tmux never stores one; it cannot be an
 * argument). Other control characters are data: tmux keeps them in window names, and every
 * log line and status output quotes them.
 * @param {unknown} s
 */
export function usableName(s) {
  return typeof s === 'string' && !s.includes('\0') && bytes(s) <= LIMITS.nameBytes;
}
/**
 * A path root keeps as a cwd: absolute, at most LIMITS.pathBytes, no NUL (control characters
 * are data, as in names). Whether the user may enter it is checked as the user (userDirs).
 * @param {unknown} p @returns {p is string}
 */
export function usablePath(p) {
  return typeof p === 'string' && p.startsWith('/') && !p.includes('\0') && bytes(p) <= LIMITS.pathBytes;
}

/**
 * One user's list-panes rows as they may be saved: a session whose name breaks the name rule
 * is left out whole (never truncated: the name is its identity); a window name that does is
 * not kept (the window comes back automatically named), a group name that does drops the
 * grouping, a layout over its cap is dropped (the panes come back tiled). `over` says why the
 * whole snapshot is refused (a count over its cap), else null.
 * @param {PaneRow[]} rows
 * @returns {{rows: PaneRow[], left: {sessions: number, windowNames: number, groups: number, layouts: number}, over: string|null}}
 */
export function screenRows(rows) {
  const left = { sessions: 0, windowNames: 0, groups: 0, layouts: 0 };
  /** @type {Set<string>} */
  const badSessions = new Set();
  /** @type {Set<string>} */
  const seenWindows = new Set();
  /** @type {Set<string>} */
  const ungrouped = new Set();
  /** @type {PaneRow[]} */
  const out = [];
  for (const r of rows) {
    if (badSessions.has(r.sessionId)) continue;
    if (!r.session || !usableName(r.session)) {
      badSessions.add(r.sessionId);
      left.sessions++;
      continue;
    }
    const first = !seenWindows.has(`${r.sessionId}/${r.windowId}`);
    seenWindows.add(`${r.sessionId}/${r.windowId}`);
    const row = { ...r };
    if (!usableName(row.windowName)) {
      if (first) left.windowNames++;
      row.windowName = '';
      row.autoName = true;
    }
    if (row.group !== null && !usableName(row.group)) {
      if (!ungrouped.has(r.sessionId)) left.groups++;
      ungrouped.add(r.sessionId);
      row.group = null;
    }
    if (bytes(row.layout) > LIMITS.layoutBytes) {
      if (first) left.layouts++;
      row.layout = '';
    }
    out.push(row);
  }
  const sessions = new Set(out.map((r) => r.sessionId)).size;
  const windows = new Set(out.map((r) => `${r.sessionId}/${r.windowId}`)).size;
  /** @type {string|null} */
  let over = null;
  if (sessions > LIMITS.sessions) over = `${sessions} sessions, over the cap of ${LIMITS.sessions}`;
  else if (windows > LIMITS.windows) over = `${windows} windows, over the cap of ${LIMITS.windows}`;
  else if (out.length > LIMITS.panes) over = `${out.length} panes, over the cap of ${LIMITS.panes}`;
  return { rows: out, left, over };
}
