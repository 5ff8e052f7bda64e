// @ts-check
/**
 * Command-line options of the agents: `--name value`, `--name=value`, flags, short aliases
 * and positional words. Unknown options and missing values are usage errors.
 */
import { errMsg } from './log.mjs';

export class UsageError extends Error {}

/**
 * @param {string[]} argv
 * @param {{valued: readonly string[], flags?: readonly string[], aliases?: Readonly<Record<string, string>>}} spec
 *   names without the leading `--`; aliases: a short form (`-v`) -> the flag's name
 * @returns {{opts: Record<string, string|true>, positional: string[]}}
 */
export function parseArgv(argv, spec) {
  const valued = new Set(spec.valued);
  const flags = new Set(spec.flags || []);
  const aliases = spec.aliases || {};
  /** @type {Record<string, string|true>} */
  const opts = {};
  /** @type {string[]} */
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (Object.prototype.hasOwnProperty.call(aliases, a)) {
      opts[aliases[a]] = true;
      continue;
    }
    if (!a.startsWith('--') || a === '--') {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (valued.has(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      opts[name] = v;
    } else if (flags.has(name)) {
      if (eq > 0) throw new UsageError(`--${name} takes no value`);
      opts[name] = true;
    } else throw new UsageError(`unknown option --${name.slice(0, 40)}`);
  }
  return { opts, positional };
}

/**
 * Runs an agent's parser (parseArgv and the agent's own checks, which throw on a bad command
 * line): its options, or why the command line is refused (each agent's main reports that in
 * its own way and exits with its usage code).
 * @template T
 * @param {(argv: string[]) => T} parse
 * @param {string[]} argv
 * @returns {{opts: T, refused?: undefined} | {opts?: undefined, refused: string}}
 */
export function tryParse(parse, argv) {
  try {
    return { opts: parse(argv) };
  } catch (e) {
    return { refused: errMsg(e) };
  }
}
