// @ts-check
/** claude-token-renew: alerts, handed to the root-side notifier (workstations-alert.socket); never the webhook. */
import net from 'node:net';
import { ALERT_ANSWER_TIMEOUT_MS, errMsg, log } from './core.mjs';

/**
 * The notifier takes one line of at most 4096 bytes with a text of at most 3000 characters;
 * a longer alert is cut (never refused forever). @param {string} text
 */
export function fitAlert(text) {
  let t = text;
  while (t.length > 3000 || Buffer.byteLength(JSON.stringify({ text: t })) > 4000) t = `${t.slice(0, Math.min(2990, Math.floor(t.length * 0.9)))}…`;
  return t;
}

/**
 * Hands one alert to the root-side notifier (workstations-alert.socket): connects to the
 * socket, sends `{"text": ...}` as one line, half-closes and reads the one-line answer.
 * The notifier knows the sender from the kernel's peer credentials and posts to Slack; this
 * process never sees the webhook. `ok` and `disabled` mean handled; `error ...`, no answer,
 * a connection failure or a timeout mean "retry on the next run".
 * @param {string} socketPath @param {string} text @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
export async function sendAlert(socketPath, text, timeoutMs = ALERT_ANSWER_TIMEOUT_MS) {
  if (!socketPath) {
    log('warn', `no alert socket configured; alert not sent: ${text}`);
    return true;
  }
  /** @type {{kind: 'answer', line: string} | {kind: 'failed', detail: string}} */
  const r = await new Promise((resolve) => {
    let buf = '';
    let done = false;
    /** @param {{kind: 'answer', line: string} | {kind: 'failed', detail: string}} v */
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const sock = net.connect({ path: socketPath });
    const timer = setTimeout(() => finish({ kind: 'failed', detail: `no answer within ${timeoutMs / 1000} s` }), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.end(`${JSON.stringify({ text: fitAlert(text) })}\n`));
    sock.on('data', (/** @type {string} */ d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish({ kind: 'answer', line: buf.slice(0, nl) });
      else if (buf.length > 1024) finish({ kind: 'failed', detail: 'answer too long' });
    });
    sock.on('end', () => (buf ? finish({ kind: 'answer', line: buf }) : finish({ kind: 'failed', detail: 'the notifier closed the connection without an answer' })));
    sock.on('close', () => finish({ kind: 'failed', detail: 'the notifier closed the connection without an answer' }));
    sock.on('error', (e) => finish({ kind: 'failed', detail: errMsg(e) }));
  });
  if (r.kind === 'failed') {
    log('warn', `alert socket ${socketPath}: ${r.detail}; will retry the alert next run`);
    return false;
  }
  const answer = r.line.trim().slice(0, 300);
  if (answer === 'ok') return true;
  if (answer === 'disabled') {
    log('warn', `Slack is disabled on this host; alert not sent: ${text}`);
    return true;
  }
  log('warn', `the notifier did not send the alert (${answer.startsWith('error') ? answer : `unexpected answer ${JSON.stringify(answer)}`}); will retry the alert next run`);
  return false;
}
