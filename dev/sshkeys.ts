/**
 * Real OpenSSH public keys for tests and benches, built from node's crypto in the SSH wire
 * format (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4, OpenSSH PROTOCOL.u2f), plus the pieces to
 * build broken ones. No private key is kept.
 */
import * as crypto from "node:crypto";

/** An SSH `string`: uint32 length, then the bytes. */
export function sshString(b: Buffer | string): Buffer {
  const body = typeof b === "string" ? Buffer.from(b, "latin1") : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** An SSH `mpint` of a non-negative magnitude (big-endian, leading zeros allowed in `mag`). */
export function sshMpint(mag: Buffer): Buffer {
  let i = 0;
  while (i < mag.length && mag[i] === 0) i++;
  const m = mag.subarray(i);
  return sshString(m.length && m[0] & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m);
}

/** `type base64(blob) comment` */
export const keyLine = (type: string, blob: Buffer, comment = "test@example"): string => `${type} ${blob.toString("base64")}${comment ? " " + comment : ""}`;

const b64url = (s: string | undefined) => Buffer.from(s!, "base64url");

export function ed25519Blob(): Buffer {
  const jwk = crypto.generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  return Buffer.concat([sshString("ssh-ed25519"), sshString(b64url(jwk.x))]);
}

/** A fresh, real ssh-ed25519 public key line. */
export const ed25519Key = (comment = "test@example"): string => keyLine("ssh-ed25519", ed25519Blob(), comment);

const rsaCache = new Map<number, crypto.JsonWebKey>();
/** The wire blob of a real RSA key of `bits` (cached per size: RSA generation is slow). */
export function rsaBlob(bits: number, fresh = false): Buffer {
  let jwk = fresh ? undefined : rsaCache.get(bits);
  if (!jwk) {
    jwk = crypto.generateKeyPairSync("rsa", { modulusLength: bits }).publicKey.export({ format: "jwk" });
    if (!fresh) rsaCache.set(bits, jwk);
  }
  return Buffer.concat([sshString("ssh-rsa"), sshMpint(b64url(jwk.e)), sshMpint(b64url(jwk.n))]);
}

export const EC_CURVES = { nistp256: "P-256", nistp384: "P-384", nistp521: "P-521" } as const;
export type EcCurve = keyof typeof EC_CURVES;

/** The uncompressed point 0x04||x||y of a fresh key on `curve`. */
export function ecPoint(curve: EcCurve): Buffer {
  const jwk = crypto.generateKeyPairSync("ec", { namedCurve: EC_CURVES[curve] }).publicKey.export({ format: "jwk" });
  return Buffer.concat([Buffer.from([4]), b64url(jwk.x), b64url(jwk.y)]);
}

export function ecdsaBlob(curve: EcCurve, point = ecPoint(curve), type = `ecdsa-sha2-${curve}`, curveName: string = curve): Buffer {
  return Buffer.concat([sshString(type), sshString(curveName), sshString(point)]);
}

export function skEd25519Blob(application = "ssh:"): Buffer {
  const jwk = crypto.generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  return Buffer.concat([sshString("sk-ssh-ed25519@openssh.com"), sshString(b64url(jwk.x)), sshString(application)]);
}

export function skEcdsaBlob(application = "ssh:"): Buffer {
  return Buffer.concat([sshString("sk-ecdsa-sha2-nistp256@openssh.com"), sshString("nistp256"), sshString(ecPoint("nistp256")), sshString(application)]);
}
