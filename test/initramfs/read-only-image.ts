// Unpacked capture images as the capture sees them once /init has mounted the read-only image:
// lastword's own image keeps its programs and libraries there, symlinked from their paths.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

/** Extracts the unpacked tree's lastword.squashfs where /init mounts it (/usr/lib/lastword/ro). */
export function mountImage(root: string): void {
  const sq = path.join(root, 'usr', 'lib', 'lastword', 'lastword.squashfs');
  const r = spawnSync('unsquashfs', ['-f', '-d', path.join(root, 'usr', 'lib', 'lastword', 'ro'), sq], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}
