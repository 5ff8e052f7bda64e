// @ts-check
/** claude-token-renew: variables that would override the Claude login (names only, never values). */
import fs from 'node:fs';
import path from 'node:path';
import { OVERRIDE_VARS } from './core.mjs';


/**
 * Names (never values) of variables that would override the login, with where they are set.
 * @param {string} home @param {NodeJS.ProcessEnv} env @returns {string[]}
 */
export function detectOverrides(home, env) {
  /** @type {string[]} */
  const found = [];
  for (const v of OVERRIDE_VARS) if (env[v]) found.push(`${v} (agent environment)`);
  const rc = ['.bashrc', '.bash_profile', '.bash_login', '.profile', '.zshrc', '.zshenv', '.zprofile', '.config/fish/config.fish', '.pam_environment'];
  try {
    for (const f of fs.readdirSync(path.join(home, '.config', 'environment.d'))) if (f.endsWith('.conf')) rc.push(path.join('.config', 'environment.d', f));
  } catch {
    /* none */
  }
  const re = new RegExp(`^\\s*(?:export\\s+|set\\s+-[a-zA-Z]*\\s+|setenv\\s+|declare\\s+-x\\s+)?(${OVERRIDE_VARS.join('|')})(?:\\s*=|\\s+\\S)`);
  for (const rel of rc) {
    let text;
    try {
      const p = path.join(home, rel);
      if (fs.statSync(p).size > 256 * 1024) continue;
      text = fs.readFileSync(p, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = re.exec(line);
      if (m) found.push(`${m[1]} (~/${rel})`);
    }
  }
  for (const rel of ['.claude/settings.json', '.claude/settings.local.json']) {
    try {
      const j = JSON.parse(fs.readFileSync(path.join(home, rel), 'utf8'));
      const envObj = j && typeof j.env === 'object' && j.env ? j.env : {};
      for (const v of OVERRIDE_VARS) if (envObj[v]) found.push(`${v} (~/${rel} "env")`);
      if (j && typeof j.apiKeyHelper === 'string' && j.apiKeyHelper) found.push(`apiKeyHelper (~/${rel})`);
    } catch {
      /* absent or not JSON */
    }
  }
  return [...new Set(found)];
}
