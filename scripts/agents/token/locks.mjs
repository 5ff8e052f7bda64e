// @ts-check
/** claude-token-renew: Claude Code's mkdir locks: stale after 60 s, heartbeat every 5 s, never steal a live one. */
import fsp from 'node:fs/promises';
import { LOCK_HEARTBEAT_MS, LOCK_STALE_MS, LockBusy, iso, log, sleep } from './core.mjs';

export class DirLock {
  /** @param {string} p */
  constructor(p) {
    this.path = p;
    /** @type {number|null} */
    this.ino = null;
  }
  /** @returns {Promise<boolean>} */
  async tryAcquire() {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fsp.mkdir(this.path);
        this.ino = (await fsp.stat(this.path)).ino;
        return true;
      } catch (e) {
        if (/** @type {any} */ (e).code !== 'EEXIST') throw e;
      }
      if (attempt > 0) return false;
      // Held: only a lock whose heartbeat stopped more than 60 s ago may be cleared.
      let st;
      try {
        st = await fsp.stat(this.path);
      } catch {
        continue; // vanished meanwhile: try again
      }
      if (Date.now() - st.mtimeMs <= LOCK_STALE_MS) return false;
      const again = await fsp.stat(this.path).catch(() => null);
      if (!again || again.ino !== st.ino || Date.now() - again.mtimeMs <= LOCK_STALE_MS) continue;
      log('warn', `removing stale lock ${this.path} (no heartbeat since ${iso(st.mtimeMs)})`);
      await fsp.rmdir(this.path).catch(() => {});
    }
    return false;
  }
  async heartbeat() {
    if (this.ino === null) return;
    const now = new Date();
    await fsp.utimes(this.path, now, now).catch(() => {});
  }
  /** @returns {Promise<boolean>} */
  async stillHeld() {
    if (this.ino === null) return false;
    const st = await fsp.stat(this.path).catch(() => null);
    return !!st && st.ino === this.ino;
  }
  async release() {
    if (this.ino === null) return;
    if (await this.stillHeld()) await fsp.rmdir(this.path).catch(() => {});
    this.ino = null;
  }
}

/**
 * Takes all locks or none (never holds one while waiting for the other, so it cannot
 * deadlock with Claude whatever order Claude uses), then heartbeats them every 5 s.
 * @param {string[]} paths @param {number} waitMs
 */
export async function acquireLocks(paths, waitMs) {
  const locks = paths.map((p) => new DirLock(p));
  const deadline = Date.now() + waitMs;
  for (;;) {
    /** @type {DirLock[]} */
    const held = [];
    let ok = true;
    for (const l of locks) {
      if (await l.tryAcquire()) held.push(l);
      else {
        ok = false;
        break;
      }
    }
    if (ok) break;
    for (const l of held.reverse()) await l.release();
    if (Date.now() >= deadline) throw new LockBusy(`Claude's credential locks are held by a live process (waited ${Math.round(waitMs / 1000)} s)`);
    await sleep(150 + Math.floor(Math.random() * 250));
  }
  const timer = setInterval(() => {
    for (const l of locks) void l.heartbeat();
  }, LOCK_HEARTBEAT_MS);
  timer.unref();
  return {
    async stillHeld() {
      for (const l of locks) if (!(await l.stillHeld())) return false;
      return true;
    },
    async release() {
      clearInterval(timer);
      for (const l of [...locks].reverse()) await l.release();
    },
  };
}
