"use strict";
/**
 * The engine's entry (Pulumi.yaml `main`; `typescript: false`, so the language host does not
 * load ts-node): loads index.ts and everything it imports through a transpile cache. Each .ts
 * file is transpiled once with tsconfig.pulumi.json's compiler options (transpile only: `npm
 * test` type-checks) and kept under node_modules/.cache, named by the hash of the TypeScript
 * version, the options, the file's path and its text; a run whose sources are unchanged reads
 * JavaScript and never loads the compiler. Loading ts-node and TypeScript cost about 1.4 s of
 * every preview (issue 25); a cache hit costs a hash and a read per file.
 */
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const CACHE = process.env.WORKSTATIONS_TS_CACHE || path.join(ROOT, "node_modules", ".cache", "workstations-program");
const compilerOptions = JSON.parse(fs.readFileSync(path.join(ROOT, "tsconfig.pulumi.json"), "utf8")).compilerOptions;
let tsVersion;
try {
  tsVersion = require("typescript/package.json").version;
} catch {
  throw new Error("components/start.js: the TypeScript compiler is not installed (it is a devDependency: run npm ci)");
}
const salt = crypto
  .createHash("sha256")
  .update(JSON.stringify({ v: 1, ts: tsVersion, compilerOptions }))
  .digest("hex");

let ts; // the compiler, loaded on the first cache miss only
let options;

function transpile(source, filename) {
  if (!ts) {
    ts = require("typescript");
    const parsed = ts.convertCompilerOptionsFromJson(compilerOptions, ROOT);
    if (parsed.errors.length) throw new Error(`tsconfig.pulumi.json: ${ts.flattenDiagnosticMessageText(parsed.errors[0].messageText, "\n")}`);
    options = { ...parsed.options, noEmit: false, sourceMap: false, inlineSourceMap: true, inlineSources: false };
  }
  return ts.transpileModule(source, { compilerOptions: options, fileName: filename }).outputText;
}

/** The compiled text of each loaded .ts file: source-map-support reads a file's source map from it. */
const compiled = new Map();

/**
 * Stack traces. The language host installs source-map-support, which maps every frame of every
 * stack that is formatted. The SDK formats one stack per promise it makes (`debuggablePromise`
 * keeps it for its leak report): a dozen per resource, 60% of the program's evaluation with
 * 100 users (issue 25: 24 s against 6 s under mocks). Those stacks keep their first three
 * frames, unmapped (JavaScript positions); every other stack (an error of the program) is mapped to the
 * TypeScript, which source-map-support finds in `compiled` (the inline source maps).
 */
function stackTraces() {
  let sms;
  try {
    sms = require(require.resolve("source-map-support", { paths: [path.dirname(require.resolve("@pulumi/pulumi"))] }));
  } catch {
    return; // no source-map-support: V8's own stacks
  }
  sms.install({ retrieveFile: (file) => compiled.get(file) || null });
  const mapped = Error.prepareStackTrace;
  if (typeof mapped !== "function") return;
  Error.prepareStackTrace = function prepareStackTrace(error, frames) {
    if (frames.length > 0 && frames[0].getFunctionName() === "debuggablePromise") return `Error\n    at ${frames.slice(0, 3).join("\n    at ")}`;
    return mapped(error, frames);
  };
}

require.extensions[".ts"] = function loadTs(module, filename) {
  const source = fs.readFileSync(filename, "utf8");
  const key = crypto.createHash("sha256").update(salt).update(filename).update("\0").update(source).digest("hex");
  const file = path.join(CACHE, key.slice(0, 2), `${key}.js`);
  let js;
  try {
    js = fs.readFileSync(file, "utf8");
  } catch {
    js = transpile(source, filename);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, js);
      fs.renameSync(tmp, file);
    } catch {
      // a read-only cache only costs the next run a transpile
    }
  }
  compiled.set(filename, js);
  module._compile(js, filename);
};
/**
 * The SDK's own debug messages ("Registering resource: t=…", "RegisterResource RPC prepared: …",
 * "… finished: …"): each is a Log call to the engine, sent one after the other, three or more
 * per resource, and shown only by `pulumi … --debug` or a verbose log. They were about 15% of a
 * no-op preview's CPU with 20 users (issue 25: 6.0 s -> 5.1 s, 4.9 s -> 4.5 s of wall time).
 * The program itself logs nothing at debug level. WORKSTATIONS_SDK_DEBUG=1 keeps them.
 */
function quietSdkDebug() {
  if (process.env.WORKSTATIONS_SDK_DEBUG === "1") return;
  let log;
  try {
    log = require(require.resolve("@pulumi/pulumi/log", { paths: [ROOT] }));
  } catch {
    return; // another SDK layout: its debug messages stay
  }
  log.debug = function debug() {
    return Promise.resolve();
  };
}

stackTraces();
quietSdkDebug();

module.exports = require(path.join(ROOT, "index.ts"));
