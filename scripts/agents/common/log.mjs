// @ts-check
/**
 * One log line per event on stderr, shared by the agents. A line is
 *   <name>[ <tag>]: <level>: <msg> k=v k=v      (or `<prio>msg k=v` for the journal)
 * where string values with anything but plain characters are JSON-quoted, so names with
 * newlines or tabs can never split or forge a log line.
 */

/** @typedef {'err'|'error'|'warning'|'warn'|'notice'|'info'|'debug'} Level */

/** syslog priorities (the journal reads a `<N>` prefix when JOURNAL_STREAM is set) */
const PRIO = { err: 3, error: 3, warning: 4, warn: 4, notice: 5, info: 6, debug: 7 };

/** @param {unknown} v */
export function fmtVal(v) {
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[A-Za-z0-9_./:@%+,=-]+$/.test(s) ? s : JSON.stringify(s);
}

/** `msg k=v …` (undefined values left out) @param {string} msg @param {Record<string, unknown>} [fields] */
export function formatLine(msg, fields) {
  let line = msg;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${fmtVal(v)}`;
  }
  return line;
}

/** @param {unknown} e */
export function errMsg(e) {
  return e instanceof Error ? e.message : String(e);
}

/**
 * @typedef {{verbose: boolean, quiet: boolean, journal: boolean, tag: string}} LogConfig
 *   verbose: debug lines are written; quiet: info lines are not; journal: `<prio>` prefixes
 *   instead of the name; tag: a word after the name (the command)
 * @typedef {(level: Level, msg: string, fields?: Record<string, unknown>) => void} LogFn
 */
/**
 * A logger for one agent.
 * @param {{name: string, journal?: boolean, levels?: boolean, redact?: (s: string) => string,
 *   newlines?: 'keep'|'space'|'collapse'}} o
 *   levels: false = no level word (one kind of line); redact: applied to the whole line;
 *   newlines: 'space' = each CR/LF becomes a space, 'collapse' = each run of them does
 * @returns {{log: LogFn, cfg: LogConfig}}
 */
export function createLogger(o) {
  /** @type {LogConfig} */
  const cfg = { verbose: false, quiet: false, journal: !!o.journal, tag: '' };
  const redact = o.redact || ((/** @type {string} */ s) => s);
  const withLevel = o.levels !== false;
  /** @type {LogFn} */
  const log = (level, msg, fields) => {
    if (level === 'debug' && !cfg.verbose) return;
    if (level === 'info' && cfg.quiet) return;
    const prefix = cfg.journal ? `<${PRIO[level]}>` : `${o.name}${cfg.tag ? ' ' + cfg.tag : ''}: ${withLevel ? `${level}: ` : ''}`;
    let line = redact(prefix + formatLine(msg, fields));
    if (o.newlines === 'space') line = line.replace(/[\r\n]/g, ' ');
    else if (o.newlines === 'collapse') line = line.replace(/[\r\n]+/g, ' ');
    process.stderr.write(line + '\n');
  };
  return { log, cfg };
}
