// @ts-check
/** tmux-persist: names as Claude and tmux spell them (pure; exported for tests). */

/** Claude's project dir name: every UTF-16 unit outside [A-Za-z0-9] becomes '-'. @param {string} cwd */
export function slugify(cwd) {
  return cwd.replace(/[^A-Za-z0-9]/g, '-');
}

/**
 * Undo tmux's utf8_stravis(VIS_OCTAL|VIS_CSTYLE|VIS_TAB|VIS_NL) of session names, so that
 * passing the result to new-session -s yields the same stored name again. tmux 3.3a also
 * writes a '$' before a letter, '_' or '{' as '\$' (a backslash itself is '\\', so '\$' is
 * only ever that escape).
 * @param {string} s
 */
export function unvis(s) {
  /** @type {Buffer[]} */
  const parts = [];
  /** @type {number[]} */
  let bytes = [];
  const flush = () => {
    if (bytes.length) parts.push(Buffer.from(bytes));
    bytes = [];
  };
  /** @type {Record<string, number>} */
  const cstyle = { n: 10, t: 9, r: 13, b: 8, a: 7, v: 11, f: 12, s: 32, '\\': 92, $: 36 };
  let i = 0;
  let plain = '';
  while (i < s.length) {
    const ch = s[i];
    if (ch !== '\\' || i + 1 >= s.length) {
      plain += ch;
      i++;
      continue;
    }
    if (plain) {
      flush();
      parts.push(Buffer.from(plain, 'utf8'));
      plain = '';
    }
    const n = s[i + 1];
    if (n in cstyle) {
      bytes.push(cstyle[n]);
      i += 2;
      continue;
    }
    const m = /^[0-7]{1,3}/.exec(s.slice(i + 1, i + 4));
    if (m) {
      bytes.push(parseInt(m[0], 8) & 0xff);
      i += 1 + m[0].length;
      continue;
    }
    bytes.push(92);
    i++;
  }
  if (plain) {
    flush();
    parts.push(Buffer.from(plain, 'utf8'));
  }
  flush();
  return Buffer.concat(parts).toString('utf8');
}

/**
 * tmux ends a command at any argument ending in ';' (a literal one is written '\;'): protect
 * an argument that comes from a snapshot. @param {string} s
 */
export function tmuxArg(s) {
  return s.endsWith(';') ? s.slice(0, -1) + '\\;' : s;
}
/** tmux also expands formats in -s/-n/-c arguments: a literal for those. @param {string} s */
export function tmuxLiteral(s) {
  return tmuxArg(s.replace(/#/g, '##'));
}

