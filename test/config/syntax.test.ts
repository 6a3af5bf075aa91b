// The pure parsers on their own: shell words and assignments, makedumpfile options, ip=, the
// kernel command line tokenizer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitCmdline } from '../../runtime/config/cmdline.ts';
import { parseCoreCollector, parseMakedumpfileArgs } from '../../runtime/config/collector.ts';
import { parseIpArgument, prefixLength } from '../../runtime/config/ip.ts';
import { parseShellAssignments, splitShellWords } from '../../runtime/config/shell.ts';
import { LastwordError } from '../../runtime/errors.ts';

const src = { file: 'test.conf', line: 7 };

test('shell words: quotes, escapes and comments as the shell splits them', () => {
  assert.deepEqual(splitShellWords(`a "b c" 'd "e"' f\\ g "h\\"i" # comment`), ['a', 'b c', 'd "e"', 'f g', 'h"i']);
  assert.deepEqual(splitShellWords(`x"y"'z'`), ['xyz']);
});

test('shell assignments: last value, expansion of earlier ones, export, continuation', () => {
  const r = parseShellAssignments('A=1\nexport B="$A two"\nC=${B}x # note\nD=\nE="multi\nline"\nA=3\n', 'f');
  assert.deepEqual(r.assignments.map((a) => [a.name, a.value, a.line]), [
    ['A', '1', 1], ['B', '1 two', 2], ['C', '1 twox', 3], ['D', '', 4], ['E', 'multi\nline', 5], ['A', '3', 7],
  ]);
  assert.throws(() => parseShellAssignments('A=`id`\n', 'f'), /f:1: command substitution/);
});

test('makedumpfile options: codecs, level, ELF, flattened, joined short options', () => {
  const c = parseMakedumpfileArgs(['-lF', '-d31', '--message-level=7', '--num-threads', '2'], src).collector;
  assert.deepEqual([c.codec, c.dumpLevel, c.flattened, c.messageLevel, c.numThreads, c.format], ['lzo', 31, true, 7, 2, 'kdump']);
  const e = parseMakedumpfileArgs(['-E', '-d', '0'], src).collector;
  assert.deepEqual([e.format, e.codec, e.dumpLevel], ['elf', 'none', 0]);
  const w = parseMakedumpfileArgs(['-c', '-x', '/boot/vmlinux', '-d', '1'], src);
  assert.match(w.warnings[0]!.message, /-x \/boot\/vmlinux/);
  assert.throws(() => parseMakedumpfileArgs(['-d', 'all'], src), /test\.conf:7: dump level 'all'/);
  assert.throws(() => parseMakedumpfileArgs(['-Q'], src), /unknown makedumpfile option -Q/);
  assert.equal(parseCoreCollector('/usr/sbin/makedumpfile -p -d 16', src).collector.codec, 'snappy');
  assert.throws(() => parseCoreCollector('gzip -9', src), (e: unknown) => e instanceof LastwordError && /core_collector 'gzip' is not supported/.test(e.message));
  // --cyclic-buffer decides makedumpfile's path (and so the page set); 0 is its default, none given
  const cy = parseMakedumpfileArgs(['-l', '-d', '31', '--cyclic-buffer', '4096'], src);
  assert.deepEqual([cy.collector.cyclicBuffer, cy.warnings], [true, []]);
  assert.equal(parseMakedumpfileArgs(['-d', '31', '--cyclic-buffer=0'], src).collector.cyclicBuffer, undefined);
  assert.throws(() => parseMakedumpfileArgs(['--cyclic-buffer', 'big'], src), /test\.conf:7: --cyclic-buffer 'big' is not a size in KiB/);
  // --non-mmap: /proc/vmcore is read with read(), as makedumpfile then reads it; --non-cyclic changes nothing here
  const nm = parseMakedumpfileArgs(['-l', '--non-mmap', '--non-cyclic', '-d', '31'], src);
  assert.deepEqual([nm.collector.nonMmap, nm.warnings], [true, []]);
  assert.equal(parseMakedumpfileArgs(['-l', '-d', '31'], src).collector.nonMmap, undefined);
});

test('ip=: dhcp forms, static long form, IPv6 brackets, MTU and MAC, DNS', () => {
  assert.deepEqual(parseIpArgument('dhcp', src).autoconf, 'dhcp');
  const i = parseIpArgument('eth1:dhcp:1400:52:54:00:12:34:56', src);
  assert.deepEqual([i.interface, i.autoconf, i.mtu, i.mac], ['eth1', 'dhcp', 1400, '52:54:00:12:34:56']);
  const s = parseIpArgument('192.168.7.2::192.168.7.1:255.255.255.0:guest:ens3:none:192.168.7.53', src);
  assert.deepEqual([s.clientIp, s.peer, s.gateway, s.netmask, s.hostname, s.interface, s.autoconf, s.dns],
    ['192.168.7.2', undefined, '192.168.7.1', '255.255.255.0', 'guest', 'ens3', 'none', ['192.168.7.53']]);
  assert.equal(prefixLength(s), 24);
  const v6 = parseIpArgument('[2001:db8::2]::[2001:db8::1]:64::eth0:none', src);
  assert.deepEqual([v6.clientIp, v6.gateway, prefixLength(v6)], ['2001:db8::2', '2001:db8::1', 64]);
  assert.throws(() => parseIpArgument('10.0.0.300::10.0.0.1:24::eth0:none', src), /client address '10\.0\.0\.300'/);
  assert.throws(() => parseIpArgument('bootp', src), /ip=bootp/);
});

test('kernel command line: quoted values and bare flags', () => {
  assert.deepEqual(splitCmdline('ro  root=/dev/vda1 "lastword.path=/a b" reset_devices\n'), [
    { name: 'ro' }, { name: 'root', value: '/dev/vda1' }, { name: 'lastword.path', value: '/a b' }, { name: 'reset_devices' },
  ]);
});
