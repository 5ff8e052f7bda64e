/**
 * What the state records of where each resource was made, and what recording it costs.
 *
 * Since Pulumi 3.195 the Node SDK sends, with every registration, the program's whole call
 * stack (`stackTrace`), and the engine keeps it in the state beside `sourcePosition`: a dozen
 * frames, about 1 KB of the checkpoint per resource here, more than most resources' own
 * inputs. Capturing it formats an Error's stack with no depth limit for every resource (through
 * source-map-support where ts-node is loaded): a third of the program's evaluation time with
 * 100 users (issue 25, a CPU profile under mocks). Only the resource's own construction site is
 * useful to read the state by (`sourcePosition`: the stack's first frame), so the SDK's
 * `Resource.stackTrace(skip)` is replaced by one that captures just that frame: the same
 * position, one frame recorded, a stack `skip + 1` frames deep.
 */
import * as url from "url";
import * as pulumi from "@pulumi/pulumi";

interface Frame {
  uri: string;
  line: number;
  column: number;
}
type ResourceStatics = {
  stackTrace?: (skip: number) => Array<Frame | undefined>;
  framePositionRegExp?: RegExp;
  __workstationsOneFrame?: boolean;
};

/**
 * The first frame the SDK would record: frame `skip` of a stack taken in the replacement (the
 * SDK's own takes its stack one call deeper, in `callsites`, and drops `skip + 1` frames).
 */
function constructionSite(skip: number, frameRe: RegExp): Array<Frame | undefined> {
  const limit = Error.stackTraceLimit;
  let stack: string | undefined;
  try {
    Error.stackTraceLimit = skip + 2;
    stack = new Error().stack;
  } finally {
    Error.stackTraceLimit = limit;
  }
  const frame = stack?.split("\n")[skip + 2];
  if (frame === undefined) return [];
  const m = frameRe.exec(frame)?.groups;
  const line = Number(m?.line);
  const column = Number(m?.column);
  if (!m?.file || m.file.startsWith("node:") || !Number.isInteger(line) || !Number.isInteger(column)) return [undefined];
  return [{ uri: url.pathToFileURL(m.file).toString(), line, column }];
}

/** Records only each resource's construction site (idempotent; a no-op if the SDK records no stacks). */
export function recordSourcePositionOnly(): void {
  const R = pulumi.Resource as unknown as ResourceStatics;
  const frameRe = R.framePositionRegExp;
  if (typeof R.stackTrace !== "function" || !(frameRe instanceof RegExp) || R.__workstationsOneFrame) return;
  R.stackTrace = (skip: number) => constructionSite(skip, frameRe);
  R.__workstationsOneFrame = true;
}
