/**
 * The program's dynamic resources (components/forgejo/provider.ts, components/kube/cut.ts)
 * store a small loader as their provider (`__provider`), which the engine's provider process
 * runs. `pulumi.dynamic.Resource` serialises that loader on every run with the SDK's closure
 * serialiser, which walks every global object and loads TypeScript to parse the functions:
 * about 0.8 s of every preview here, for a text that is the same run after run (issue 25, a
 * CPU profile of the program). `LoaderResource` registers the same resource (the type
 * `pulumi-nodejs:dynamic/<module>:<type>`, the same `__provider` text) and serialises a loader
 * once per content: the text is kept under node_modules/.cache, named by the hash of the SDK's
 * version, the whole source file that makes the loader and the values it captures.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

const CACHE = path.join(process.env.WORKSTATIONS_TS_CACHE ?? path.join(__dirname, "..", "node_modules", ".cache", "workstations-program"), "providers");
const texts = new Map<string, pulumi.Input<string>>();

function sdkVersion(): string {
  try {
    return String(require("@pulumi/pulumi/package.json").version);
  } catch {
    return "unknown";
  }
}

/**
 * The serialised text of `provider`, made in `sourceFile` capturing `captured` (each value it
 * closes over, in order), exactly as `pulumi.dynamic.Resource` would store it. The loader
 * must capture no secret.
 */
export function loaderText(sourceFile: string, captured: readonly string[], provider: pulumi.dynamic.ResourceProvider): pulumi.Input<string> {
  const key = crypto
    .createHash("sha256")
    .update(JSON.stringify({ v: 1, sdk: sdkVersion(), source: fs.readFileSync(sourceFile, "utf8"), captured }))
    .digest("hex");
  const known = texts.get(key);
  if (known !== undefined) return known;
  const file = path.join(CACHE, `${key}.js`);
  let text: pulumi.Input<string>;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    // As pulumi.dynamic.Resource does it (the same closure, `() => provider`, the same options).
    text = pulumi.output(
      pulumi.runtime
        .serializeFunction(() => provider, { allowSecrets: true })
        .then((sf) => {
          if (sf.containsSecrets) throw new Error(`${sourceFile}: a dynamic provider's loader captures a secret`);
          try {
            fs.mkdirSync(CACHE, { recursive: true });
            const tmp = `${file}.${process.pid}.tmp`;
            fs.writeFileSync(tmp, sf.text);
            fs.renameSync(tmp, file);
          } catch {
            // a read-only cache only costs the next run a serialisation
          }
          return sf.text;
        }),
    );
  }
  texts.set(key, text);
  return text;
}

/** A dynamic resource whose provider is the stored loader text (see `loaderText`). */
export abstract class LoaderResource extends pulumi.CustomResource {
  constructor(text: pulumi.Input<string>, module: string, type: string, name: string, props: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    if ("__provider" in props) throw new Error("A dynamic resource must not define the __provider key");
    super(`pulumi-nodejs:dynamic/${module}:${type}`, name, { ...props, __provider: text }, opts);
  }
}
