// Child process of the bench's SSH leg: sends a file to the bench sshd through lastword's own SSH
// target (runtime/targets/ssh.ts, ssh2 with strict host keys), as the capture would send a dump —
// a byte stream into Fedora's `dd` (transport flattened) or SFTP writes at offsets (transport sftp).
// A process of its own so its wall time and peak RSS are measured like OpenSSH's.
//   node test/bench/ssh-send.ts PORT KEY KNOWN_HOSTS FILE REMOTE_DIR NAME flattened|sftp
import * as fs from 'node:fs';
import { openSshTarget } from '../../runtime/targets/ssh.ts';

const CHUNK = 1 << 20;

async function main(argv: string[]): Promise<void> {
  const [port, key, knownHosts, file, remoteDir, name, transport] = argv;
  if (!name || (transport !== 'flattened' && transport !== 'sftp')) throw new Error('usage: ssh-send.ts PORT KEY KNOWN_HOSTS FILE REMOTE_DIR NAME flattened|sftp');
  const target = await openSshTarget({
    kind: 'ssh', user: 'root', host: '127.0.0.1', port: Number(port), key: key!, knownHosts: knownHosts!,
    transport, source: { file: 'bench' },
  });
  try {
    const sink = await target.openDump(remoteDir!, name, transport === 'sftp' ? 'positional' : 'stream');
    const fd = fs.openSync(file!, 'r');
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let off = 0; ;) {
      const n = fs.readSync(fd, buf, 0, CHUNK, off);
      if (n === 0) break;
      const part = n === CHUNK ? buf : buf.subarray(0, n);
      if (sink.kind === 'stream') await sink.write(part);
      else await sink.pwrite(part, off);
      off += n;
    }
    fs.closeSync(fd);
    await sink.close();
  } finally {
    await target.close();
  }
}

main(process.argv.slice(2)).then(() => process.exit(0), (err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
