// OpenSSH known_hosts, checked the way kdump's `ssh -o StrictHostKeyChecking=yes` checks it: a host
// key is accepted only when a line for this host holds exactly that key. Pure over the file text
// and the key blob the server presented (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT").
import { createHash, createHmac } from 'node:crypto';

export interface KnownHostKey {
  /** Key type as in the line: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256 ... */
  type: string;
  blob: Buffer;
  line: number;
  revoked: boolean;
}

export type HostKeyVerdict =
  | { ok: true; line: number }
  | { ok: false; reason: 'unknown' | 'changed' | 'revoked'; fingerprint: string; type: string; line?: number };

/** `SHA256:<base64 without padding>`, as ssh-keygen -l and ssh print it. */
export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** The key type named inside an SSH public key blob (its first string). */
export function blobType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const n = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + n).toString('latin1');
}

/** The names a host is looked up under: `host` on port 22, `[host]:port` otherwise. */
export function hostPatternsFor(host: string, port: number): string[] {
  return port === 22 ? [host] : [`[${host}]:${port}`];
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp('^' + pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$', 'i');
  return re.test(name);
}

/** Does one host field (comma list, negations, hashed |1|salt|hash entries) name `name`? */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  let matched = false;
  for (const p of field.split(',')) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) {
      matched = true;
    }
  }
  return matched;
}

/** The keys known_hosts holds for host:port, in file order. */
export function knownKeysFor(text: string, host: string, port: number): KnownHostKey[] {
  const names = hostPatternsFor(host, port);
  const keys: KnownHostKey[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const words = line.split(/\s+/);
    let revoked = false;
    if (words[0]!.startsWith('@')) {
      const marker = words.shift()!;
      // Host certificates are not used for the kdump target; a CA line grants nothing here.
      if (marker === '@cert-authority') return;
      revoked = marker === '@revoked';
    }
    const [hosts, type, b64] = words;
    if (!hosts || !type || !b64) return;
    if (!names.some((n) => hostFieldMatches(hosts, n))) return;
    keys.push({ type, blob: Buffer.from(b64, 'base64'), line: i + 1, revoked });
  });
  return keys;
}

/** Strict checking: the presented key must be listed for this host and not revoked. */
export function verifyHostKey(known: readonly KnownHostKey[], presented: Buffer): HostKeyVerdict {
  const fp = fingerprint(presented);
  const type = blobType(presented);
  const revoked = known.find((k) => k.revoked && k.blob.equals(presented));
  if (revoked) return { ok: false, reason: 'revoked', fingerprint: fp, type, line: revoked.line };
  const same = known.find((k) => !k.revoked && k.blob.equals(presented));
  if (same) return { ok: true, line: same.line };
  const other = known.find((k) => !k.revoked && k.type === type);
  if (other) return { ok: false, reason: 'changed', fingerprint: fp, type, line: other.line };
  return { ok: false, reason: 'unknown', fingerprint: fp, type };
}

/** Host key algorithms to offer so the server shows a key type we know (as OpenSSH orders them). */
export function hostKeyAlgorithms(known: readonly KnownHostKey[]): string[] {
  const out: string[] = [];
  for (const k of known) {
    if (k.revoked) continue;
    const algs = k.type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [k.type];
    for (const a of algs) if (!out.includes(a)) out.push(a);
  }
  return out;
}
