// The test harness's own clean-up when a test process is cancelled (a CI run stopped): a process
// stopped by SIGTERM, SIGINT or SIGHUP removes its network namespaces (their servers detached) and
// its E2E work directories under /tmp, then dies of the signal as it would have.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { repo } from '../support/lab.ts';

const skip = spawnSync('ip', ['netns', 'list']).status === 0 ? undefined : 'ip netns is not usable here';

const child = `
import { Netns } from ${JSON.stringify(path.join(repo, 'test', 'support', 'netns.ts'))};
import { e2eDir } from ${JSON.stringify(path.join(repo, 'test', 'e2e', 'cycle.ts'))};
const ns = Netns.create('lwsig');
ns.spawn('sleep', ['600']);
const dir = e2eDir({ after() {} }, 'signal');
console.log(JSON.stringify({ ns: ns.name, dir }));
setInterval(() => {}, 1000);
`;

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  test(`${sig}: the namespace and its server, and the E2E work directory, are gone; the process dies of ${sig}`, { skip, timeout: 60_000 }, async () => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', child], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      p.stdout!.on('data', (d: Buffer) => { out += d; if (out.includes('\n')) resolve(out.split('\n')[0]!); });
      p.on('exit', (code) => reject(new Error(`the child exited (${code}) before it was ready`)));
    });
    const { ns, dir } = JSON.parse(line) as { ns: string; dir: string };
    try {
      assert.ok(fs.existsSync(dir));
      assert.match(spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout, /\d/, 'the server runs in the namespace');
      const exited = new Promise<NodeJS.Signals | null>((resolve) => p.on('exit', (_code, signal) => resolve(signal)));
      p.kill(sig);
      assert.equal(await exited, sig);
      assert.ok(!fs.existsSync(dir), `${dir} is still there`);
      assert.doesNotMatch(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout, new RegExp(`^${ns}\\b`, 'm'));
    } finally {
      spawnSync('ip', ['netns', 'del', ns]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
