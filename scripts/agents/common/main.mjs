// @ts-check
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Is the module at `url` (its import.meta.url) the program node was started with? True
 * through the /usr/local/bin symlinks; false when a test imports it.
 * @param {string} url
 */
export function isMain(url) {
  try {
    return !!process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(url));
  } catch {
    return false;
  }
}
