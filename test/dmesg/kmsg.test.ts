// The capture kernel's own log for the run log (kdump.sh's kexec-dmesg.log): /dev/kmsg records as
// `dmesg` prints them, checked against util-linux dmesg on this machine's kernel.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { formatKmsgRecord, readKernelLog } from '../../runtime/dmesg/kmsg.ts';

let readable = true;
try { fs.closeSync(fs.openSync('/dev/kmsg', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)); } catch { readable = false; }

test('records print as dmesg prints them: [seconds.micros] text, dictionary lines, escapes decoded, trailing blanks kept', () => {
  assert.equal(formatKmsgRecord('6,339,5140900,-;NET: Registered protocol family 10\n SUBSYSTEM=net\n DEVICE=+net:eth0\n'), '[    5.140900] NET: Registered protocol family 10');
  assert.equal(formatKmsgRecord('4,0,0,-,caller=T0;Linux version 6.1\n'), '[    0.000000] Linux version 6.1');
  assert.equal(formatKmsgRecord('6,12,123456789012,c;tab\\x09and \\x5c backslash\n'), '[123456.789012] tab\tand \\ backslash');
  assert.equal(formatKmsgRecord('6,13,1,-;x86/PAT: WB  WT  \n'), '[    0.000001] x86/PAT: WB  WT  ');
  assert.equal(formatKmsgRecord(' SUBSYSTEM=net\n'), undefined);
  assert.equal(formatKmsgRecord('garbage;x\n'), undefined);
});

test('the whole buffer of the running kernel, the same lines as util-linux dmesg', { skip: readable ? undefined : '/dev/kmsg is not readable here' }, () => {
  const ours = readKernelLog()!.split('\n').filter(Boolean);
  const theirs = spawnSync('dmesg', [], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  assert.ok(ours.length > 10, `only ${ours.length} records`);
  // The first records never change while the buffer has not wrapped; compare the first 50.
  const n = Math.min(50, ours.length, theirs.length);
  assert.deepEqual(ours.slice(0, n), theirs.slice(0, n));
  assert.equal(readKernelLog('/nonexistent/kmsg'), undefined);
});
