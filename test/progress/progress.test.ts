import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, formatProgress, formatSummary, RunLog } from '../../runtime/progress/progress.ts';

test('a progress line says percent, pages, MB/s of vmcore and ETA', () => {
  // 25% of 1000 pages of 4 KiB in 2 s: 0.512 MB/s, 6 s to go
  assert.equal(formatProgress(250, 1000, 4096, 2000), 'lastword: saving  25% (250 of 1000 pages), 0.5 MB/s, ETA 0:06');
  assert.match(formatProgress(0, 1000, 4096, 0), /ETA \?$/);
  assert.match(formatProgress(1000, 1000, 4096, 1000), /100%.*ETA 0:00$/);
  assert.equal(formatDuration(3723_000), '1:02:03');
});

test('prints at most one progress line per interval, and always the last one', () => {
  let t = 0;
  const shown: string[] = [];
  const log = new RunLog({ emit: (l) => shown.push(l), now: () => t, intervalMs: 5000 });
  log.startPages();
  for (let done = 0; done <= 1000; done += 10) {
    t += 100; // 101 callbacks over 10 s
    log.pages(done, 1000, 4096);
  }
  assert.equal(shown.length, 3, shown.join('\n'));
  assert.match(shown.at(-1)!, /100%/);
  assert.deepEqual(log.lines, shown);
  assert.match(log.text(), /^\[ 0:05\] lastword: saving/);
});

test('the summary says target, file, bytes, pages per class, codec, time and whether it is incomplete', () => {
  const lines = formatSummary({
    ok: false, target: 'ext4 LABEL=dump', file: '/var/crash/x/vmcore-incomplete', incomplete: true, bytes: 5_000_000,
    format: 'kdump', codec: 'lzo', dumpLevel: 31, ramPages: 100, dumpablePages: 40, zeroPages: 3,
    excluded: { cache: 10, cachePrivate: 5, user: 20, free: 25, hwpoison: 0, offline: 0 },
    elapsedMs: 65_000, reason: 'ETARGET_FULL: no space', action: 'failure action: reboot',
  }).join('\n');
  for (const want of [/dump INCOMPLETE/, /ext4 LABEL=dump/, /vmcore-incomplete/, /5000000 bytes/, /40 saved of 100, 3 zero/, /user 20, free 25/, /codec lzo, dump level 31/, /1:05/, /ETARGET_FULL/, /failure action: reboot/]) {
    assert.match(lines, want);
  }
  assert.ok(lines.split('\n').length <= 24, 'does not fit one screen');
});
