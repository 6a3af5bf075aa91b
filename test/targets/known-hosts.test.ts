import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { blobType, fingerprint, hostKeyAlgorithms, knownKeysFor, verifyHostKey } from '../../runtime/targets/known-hosts.ts';

// SSH public key blobs built in code: string type, then some key bytes.
function blob(type: string, fill: number): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  const k = Buffer.alloc(36, fill);
  return Buffer.concat([len, t, k]);
}
const ed = blob('ssh-ed25519', 1);
const ed2 = blob('ssh-ed25519', 2);
const rsa = blob('ssh-rsa', 3);
const line = (hosts: string, b: Buffer) => `${hosts} ${blobType(b)} ${b.toString('base64')}`;

test('accepts exactly the key known_hosts lists for the host', () => {
  const text = ['# comment', line('10.0.0.1,backup', ed), line('other', ed2)].join('\n');
  const known = knownKeysFor(text, '10.0.0.1', 22);
  assert.deepEqual(verifyHostKey(known, ed), { ok: true, line: 2 });
});

test('a key listed only for another host is unknown', () => {
  const v = verifyHostKey(knownKeysFor(line('other', ed), '10.0.0.1', 22), ed);
  assert.equal(v.ok, false);
  if (!v.ok) {
    assert.equal(v.reason, 'unknown');
    assert.equal(v.fingerprint, fingerprint(ed));
    assert.match(v.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
  }
});

test('another key of the same type for the host is a changed key, with its line', () => {
  const v = verifyHostKey(knownKeysFor(['', line('10.0.0.1', ed2)].join('\n'), '10.0.0.1', 22), ed);
  assert.deepEqual(v.ok ? undefined : [v.reason, v.line], ['changed', 2]);
});

test('a non-standard port is looked up as [host]:port only', () => {
  assert.equal(knownKeysFor(line('10.0.0.1', ed), '10.0.0.1', 2222).length, 0);
  assert.equal(knownKeysFor(line('[10.0.0.1]:2222', ed), '10.0.0.1', 2222).length, 1);
  assert.equal(knownKeysFor(line('[10.0.0.1]:2222', ed), '10.0.0.1', 22).length, 0);
});

test('hashed host names, wildcards and negations match like OpenSSH', () => {
  const salt = Buffer.alloc(20, 7);
  const hash = createHmac('sha1', salt).update('backup.example').digest('base64');
  assert.equal(knownKeysFor(line(`|1|${salt.toString('base64')}|${hash}`, ed), 'backup.example', 22).length, 1);
  assert.equal(knownKeysFor(line(`|1|${salt.toString('base64')}|${hash}`, ed), 'other.example', 22).length, 0);
  assert.equal(knownKeysFor(line('*.example,!bad.example', ed), 'good.example', 22).length, 1);
  assert.equal(knownKeysFor(line('*.example,!bad.example', ed), 'bad.example', 22).length, 0);
});

test('a @revoked key is refused and @cert-authority lines grant nothing', () => {
  const text = [`@revoked ${line('*', ed)}`, `@cert-authority ${line('*', ed2)}`].join('\n');
  const known = knownKeysFor(text, '10.0.0.1', 22);
  const v = verifyHostKey(known, ed);
  assert.equal(v.ok ? 'ok' : v.reason, 'revoked');
  assert.equal(verifyHostKey(known, ed2).ok, false);
});

test('offers the host key algorithms known_hosts can verify, rsa as its sha2 signatures first', () => {
  const known = knownKeysFor([line('h', ed), line('h', rsa)].join('\n'), 'h', 22);
  assert.deepEqual(hostKeyAlgorithms(known), ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
});
