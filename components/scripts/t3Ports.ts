/**
 * Which port each T3 user gets: decided on the host, from its ledger, by this small Node
 * program (root runs it with /usr/bin/node from the `web-apply` verb, components/scripts/web.ts).
 *
 *   node -e T3_PORTS_JS -- LEDGER T3_DIR FIRST_PORT USER...
 *
 * The ledger (`<port> <user>` per line, root 0600) holds every port ever handed out and to
 * whom: a user keeps their port for good (sticky), and a port once handed out never goes to
 * anyone else (not after the user is suspended, offboarded or turned off). Before a new port
 * is given out, what the host already hands out is read back into the ledger: every
 * `T3_DIR/<user>.env` (`T3_PORT=N`) and every `dispatch.json` entry, hand-made ones included
 * (the team's hard-coded ports once cross-wired users); a port claimed twice goes to the first
 * claim (env files by name, then dispatch.json) and the other user gets a new one. A new port
 * is the lowest from FIRST_PORT up that is not in the ledger and that nothing listens on.
 *
 * Prints `changed: …` lines (what it recorded), then `port <user> <port>` for each USER in
 * order. A ledger it cannot read as `<port> <user>` lines stops it (exit 1, one line on
 * stderr): it never guesses. The ledger is replaced atomically (temp file, fsync, rename).
 * Kept as text here (not a shipped file) so the host library carries it and its digest.
 */
export const T3_PORTS_JS = String.raw`"use strict";
const fs = require("fs");
const [ledgerFile, dir, firstArg, ...wanted] = process.argv.slice(1);
const FIRST = Number(firstArg);
const NAME = /^[a-z][a-z0-9_-]{0,31}$/;
const fail = (m) => { process.stderr.write("t3 ports: " + m + "\n"); process.exit(1); };
const read = (f) => { try { return fs.readFileSync(f, "utf8"); } catch (e) { if (e.code === "ENOENT") return undefined; throw e; } };
if (!Number.isInteger(FIRST) || FIRST < 1024 || FIRST > 65535) fail("first port " + firstArg + " is not 1024-65535");
for (const u of wanted) if (!NAME.test(u)) fail("user " + JSON.stringify(u) + " is not a user name");
const owner = new Map(), port = new Map(), out = [];
let dirty = false;
const add = (u, p) => { owner.set(p, u); port.set(u, p); dirty = true; };
(read(ledgerFile) ?? "").split("\n").forEach((line, i) => {
  if (line === "" || line.startsWith("#")) return;
  const m = /^([0-9]{1,5}) ([a-z][a-z0-9_-]{0,31})$/.exec(line);
  const p = m && Number(m[1]);
  if (!m || p < 1 || p > 65535) fail(ledgerFile + ":" + (i + 1) + ": not '<port> <user>': " + JSON.stringify(line.slice(0, 80)));
  if (owner.has(p)) fail(ledgerFile + ":" + (i + 1) + ": port " + p + " is listed twice (" + owner.get(p) + ", " + m[2] + ")");
  if (port.has(m[2])) fail(ledgerFile + ":" + (i + 1) + ": user " + m[2] + " is listed twice");
  owner.set(p, m[2]);
  port.set(m[2], p);
});
// What the host hands out already: env files (by name), then dispatch.json.
const found = [];
const names = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
for (const f of names) {
  const m = /^([a-z][a-z0-9_-]{0,31})\.env$/.exec(f);
  const v = m && /^T3_PORT=([0-9]{1,5})$/m.exec(read(dir + "/" + f) ?? "");
  if (v) found.push([m[1], Number(v[1]), dir + "/" + f]);
}
const dispatchText = read(dir + "/dispatch.json");
if (dispatchText !== undefined) {
  let d;
  try { d = JSON.parse(dispatchText); } catch { console.log("warning: " + dir + "/dispatch.json is not JSON; no port read back from it"); }
  for (const [id, v] of Object.entries(d && typeof d === "object" ? d : {}))
    if (v && typeof v.os_user === "string" && NAME.test(v.os_user) && Number.isInteger(v.port)) found.push([v.os_user, v.port, dir + "/dispatch.json (" + id + ")"]);
}
for (const [u, p, where] of found) {
  if (port.has(u) || p < 1024 || p > 65535) continue;
  if (owner.has(p)) { console.log("warning: port " + p + " of " + u + " in " + where + " is " + owner.get(p) + "'s; " + u + " gets another"); continue; }
  add(u, p);
  console.log("changed: t3 port " + p + " of " + u + " read back from " + where);
}
// Ports something listens on (never handed out anew).
const listening = new Set();
for (const f of ["/proc/net/tcp", "/proc/net/tcp6"])
  for (const line of (read(f) ?? "").split("\n").slice(1)) {
    const c = line.trim().split(/\s+/);
    if (c[3] === "0A") listening.add(parseInt(c[1].split(":").pop(), 16));
  }
let next = FIRST;
for (const u of wanted) {
  if (port.has(u)) continue;
  while (owner.has(next) || listening.has(next)) next++;
  if (next > 65535) fail("no port left from " + FIRST + " up");
  add(u, next);
  console.log("changed: t3 port " + next + " for " + u);
}
if (dirty) {
  const text = [...owner].sort((a, b) => a[0] - b[0]).map(([p, u]) => p + " " + u + "\n").join("");
  const tmp = ledgerFile + ".tmp" + process.pid;
  const fd = fs.openSync(tmp, "wx", 0o600);
  fs.writeSync(fd, text);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, ledgerFile);
}
for (const u of wanted) out.push("port " + u + " " + port.get(u));
console.log(out.join("\n"));
`;
