// Our kdump-compressed reader against makedumpfile's own output (-c zlib, -l lzo) of a real 6.1
// kdump vmcore: header, VMCOREINFO, notes and every saved page equal the vmcore's.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openKdumpFile } from '../../runtime/dumpfile/kdump-reader.ts';
import { LastwordError } from '../../runtime/errors.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import { labVmcore } from '../support/lab.ts';
import { assertPagesMatchVmcore, makedumpfile, tempDir } from './support.ts';

describe('kdump-compressed reader on makedumpfile output', () => {
  for (const [opt, codec, level] of [['-c', 'zlib', 31], ['-l', 'lzo', 1]] as const) {
    test(`reads makedumpfile ${opt} -d ${level}: header, VMCOREINFO, notes and every saved page`, (t) => {
      const vmcoreFile = labVmcore();
      const dir = tempDir(t);
      const out = makedumpfile([opt, '-d', String(level)], vmcoreFile, path.join(dir, 'dump'));
      const vmcore = openVmcore(vmcoreFile);
      const dump = openKdumpFile(out);
      t.after(() => { dump.close(); vmcore.close(); });
      assert.equal(dump.header.signature, 'KDUMP   ');
      assert.equal(dump.header.headerVersion, 6);
      assert.equal(dump.codec, codec);
      assert.equal(dump.incomplete, false);
      assert.equal(dump.subHeader.dumpLevel, level);
      assert.equal(dump.maxMapnr, vmcore.maxMapnr);
      assert.equal(dump.header.nrCpus, vmcore.nrCpus);
      assert.ok(dump.notes.equals(vmcore.notes), 'ELF notes copied verbatim');
      assert.equal(dump.vmcoreinfo.osrelease, vmcore.vmcoreinfo.osrelease);
      assert.equal(dump.vmcoreinfoText, vmcore.notes.toString('latin1', vmcore.vmcoreinfoDescOffset, vmcore.vmcoreinfoDescOffset + vmcore.vmcoreinfoDescSize).replace(/\0+$/, ''));
      const n = assertPagesMatchVmcore(dump, vmcore);
      assert.equal(n, dump.dumpablePages);
      assert.ok(n > 1000, `only ${n} pages saved`);
      // Every pfn the filter dropped must still be RAM (1st bitmap) or a hole.
      let excluded = 0;
      for (let pfn = 0; pfn < dump.maxMapnr; pfn++) if (dump.hasRam(pfn) && !dump.isDumpable(pfn)) excluded++;
      if (level === 31) assert.ok(excluded > 0, 'level 31 excluded nothing');
    });
  }

  test('names a flattened file and tells to reassemble it', (t) => {
    const dir = tempDir(t);
    const f = path.join(dir, 'flat');
    const b = Buffer.alloc(4096);
    b.write('makedumpfile', 0, 'latin1');
    fs.writeFileSync(f, b);
    assert.throws(() => openKdumpFile(f), (err: unknown) => err instanceof LastwordError && err.code === 'EDUMP_HEADER' && /flattened.*-R/.test(err.message));
  });

  test('reports a truncated file with the offset it needed', (t) => {
    const vmcoreFile = labVmcore();
    const dir = tempDir(t);
    const out = makedumpfile(['-c', '-d', '31'], vmcoreFile, path.join(dir, 'dump'));
    fs.truncateSync(out, 4096 * 2 + 100);
    assert.throws(() => openKdumpFile(out), (err: unknown) => err instanceof LastwordError && err.code === 'EDUMP_TRUNCATED' && /offset 0x/.test(err.message));
  });
});
