// Reading the vmcore through mappings of it (what lastword does with /proc/vmcore, whose read()
// copies page by page) gives the very bytes read() gives: here forced onto a regular copy of a real
// 6.1 kdump vmcore, whole dumps written through mappings (main thread and compression threads)
// equal `lastword filter`'s read() dumps byte for byte (the mem_map walk reading through mappings
// too), and the mappings were really used.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePageFilter, dumpHeaderInfo } from '../../runtime/cli/filter.ts';
import { codecsAddon } from '../../runtime/codecs/codec.ts';
import { DumpOutput } from '../../runtime/dumpfile/output.ts';
import { writeElfDump } from '../../runtime/dumpfile/elf-writer.ts';
import { writeKdumpCompressed } from '../../runtime/dumpfile/kdump-writer.ts';
import { onProcfs, readMapped, unmapVmcore } from '../../runtime/system/vmcore-mmap.ts';
import { FilePositionalSink } from '../../runtime/targets/target.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import { labVmcore, repo } from '../support/lab.ts';
import { writeSyntheticVmcore } from '../../initramfs/executable/synthetic-vmcore.ts';
import { tempDir } from '../dumpfile/support.ts';

function lastwordFilter(...args: string[]): void {
  const r = spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'filter', '--message-level', '0', ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

test('procfs is told from other filesystems', () => {
  assert.equal(onProcfs('/proc/self/status'), true);
  assert.equal(onProcfs(path.join(repo, 'package.json')), false);
  assert.equal(onProcfs('/nonexistent/vmcore'), false);
});

test('mapped reads return the bytes read() returns, across window boundaries and up to the end of the file', (t) => {
  const file = labVmcore();
  const size = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r');
  t.after(() => { unmapVmcore(); fs.closeSync(fd); });
  const W = 4 << 20;
  // Ranges inside a window, across one and two window boundaries, from odd offsets, the file's last bytes.
  const ranges: [number, number][] = [[0, 64], [W - 100, 200], [3 * W - 4096, 2 * W + 8192], [12345, 777_777], [size - 3000, 3000]];
  let seed = 7;
  for (let i = 0; i < 50; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const off = seed % (size - (1 << 20));
    ranges.push([off, 1 + (seed % (1 << 20))]);
  }
  for (const [off, len] of ranges) {
    const a = Buffer.alloc(len), b = Buffer.alloc(len);
    assert.equal(readMapped(fd, a, off), 0, `mapped read of ${len} at 0x${off.toString(16)}`);
    fs.readSync(fd, b, 0, len, off);
    assert.ok(a.equals(b), `${len} bytes at 0x${off.toString(16)} differ`);
  }
  // Past the end: -1, as a short read; nothing is mapped beyond the file.
  assert.equal(readMapped(fd, Buffer.alloc(20), size - 10), -1);
  assert.ok(unmapVmcore() > 3, 'the reads did not go through several windows');
});

test('a vmcore that fails to open leaves no window behind for the next file on the same fd number', (t) => {
  const dir = tempDir(t);
  const info = 'OSRELEASE=6.1.0-test\nPAGESIZE=4096\n';
  const bad = path.join(dir, 'bad'), good = path.join(dir, 'good');
  writeSyntheticVmcore(bad, info, []);          // no PT_LOAD: refused after its headers were read through a window
  const data = Buffer.alloc(16 * 4096);
  for (let i = 0; i < 16; i++) data.write(`good page ${i}`, i * 4096);
  writeSyntheticVmcore(good, info, [{ paddr: 0x100000, vaddr: 0xffff888000100000n, data }]);
  assert.throws(() => openVmcore(bad, { mmap: true }), /no PT_LOAD segments/);
  const v = openVmcore(good, { mmap: true });   // the fd number the bad one had
  t.after(() => v.close());
  const page = Buffer.alloc(4096);
  v.readPages(0x100 + 5, 1, page);
  assert.equal(page.toString('latin1', 0, 11), 'good page 5');
});

test('dumps written through mappings (main thread and compression threads) equal lastword filter\'s read() dumps byte for byte', { timeout: 300_000 }, async (t) => {
  const file = labVmcore();
  const dir = tempDir(t);
  const refL = path.join(dir, 'ref.lzo'), refE = path.join(dir, 'ref.elf');
  lastwordFilter('--non-mmap', '-l', '-d', '31', file, refL);
  lastwordFilter('-E', '-d', '31', file, refE);
  const addon = codecsAddon();
  for (const workers of [1, 0, -1]) {
    const out = path.join(dir, `mapped-${workers}`);
    const vmcore = openVmcore(file, { mmap: true });
    assert.equal(vmcore.mappedReads, true);
    const windowsBefore = addon.mappedWindows();
    try {
      // The mem_map walk reads through its own mappings, on two threads.
      const filter = await choosePageFilter(vmcore, 31, () => {}, { walkThreads: 2 });
      const output = new DumpOutput(new FilePositionalSink(fs.openSync(out, 'w'), out, { fsync: false }));
      if (workers < 0) await writeElfDump({ vmcore, filter, output });
      else await writeKdumpCompressed({ vmcore, filter, output, codec: 'lzo', headerInfo: dumpHeaderInfo(vmcore, () => {}), workers });
      assert.equal(vmcore.mappedReads, true, 'a mapping failed and reads fell back to read()');
      assert.ok(filter.walks!.cycle > 0 && filter.walks!.block === 0, 'the addon walked the cycles, reading the struct pages itself');
    } finally {
      vmcore.close();
    }
    if (workers >= 0) assert.ok(addon.mappedWindows() - windowsBefore > 10, `--num-threads ${workers}: the pages were not read through mappings`);
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(workers < 0 ? refE : refL)), `${workers < 0 ? 'ELF' : `lzo, ${workers} threads`}: the dump differs from the read() one`);
  }
});

test('with the SIGBUS guard installed (mapped-fault.h), a SIGBUS that is no guarded load still ends the process, as without it', () => {
  // The guard's handler is installed by the first mapped read; a SIGBUS sent with kill() is not one of its faults.
  const script = `import * as fs from 'node:fs';
import { readMapped } from ${JSON.stringify(path.join(repo, 'runtime', 'system', 'vmcore-mmap.ts'))};
const fd = fs.openSync(${JSON.stringify(path.join(repo, 'package.json'))}, 'r');
if (readMapped(fd, Buffer.alloc(16), 0) !== 0) process.exit(3);
process.kill(process.pid, 'SIGBUS');
setTimeout(() => process.exit(4), 2000);
`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.signal, 'SIGBUS', `exit ${r.status}, ${r.stderr}`);
});
