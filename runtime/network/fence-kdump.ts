// fence_kdump notification, as kdump.sh runs `fence_kdump_send $FENCE_KDUMP_ARGS $FENCE_KDUMP_NODES &`
// for the whole capture: each cluster node's fence_kdump agent waits for a datagram from the failed
// node, and takes it as "this node is dumping, do not power-fence it". The datagram is
// fence-agents' struct fence_kdump_msg { uint32 magic 0x1B302A40; uint32 version 1 } in host byte
// order, sent to every node now and then every interval (count times, or until the capture ends).
// The agent only accepts it from the address it knows the node by, so it leaves through the
// interface the route to the node picks, like fence_kdump_send's.
import * as dgram from 'node:dgram';
import * as dns from 'node:dns';
import * as os from 'node:os';
import { describeError } from '../errors.ts';
import type { FencePlan } from '../config/plan.ts';

export const FENCE_KDUMP_MAGIC = 0x1b302a40;
export const FENCE_KDUMP_MSGV1 = 1;

/** The 8 bytes fence_kdump_send sends, in this machine's byte order (the agent reads its own). */
export function fenceKdumpMessage(endianness: 'LE' | 'BE' = os.endianness()): Buffer {
  const b = Buffer.alloc(8);
  if (endianness === 'LE') { b.writeUInt32LE(FENCE_KDUMP_MAGIC, 0); b.writeUInt32LE(FENCE_KDUMP_MSGV1, 4); }
  else { b.writeUInt32BE(FENCE_KDUMP_MAGIC, 0); b.writeUInt32BE(FENCE_KDUMP_MSGV1, 4); }
  return b;
}

export interface FenceNotifier {
  /** Datagrams handed to the kernel so far, all nodes together. */
  readonly sent: number;
  /** Stops sending and closes the sockets. */
  stop(): Promise<void>;
}

type Lookup = (host: string, family: 0 | 4 | 6) => Promise<{ address: string; family: 4 | 6 }>;

const systemLookup: Lookup = (host, family) => new Promise((resolve, reject) => {
  dns.lookup(host, { family }, (err, address, fam) => (err ? reject(err) : resolve({ address, family: fam === 6 ? 6 : 4 })));
});

/**
 * Resolves the nodes (through /etc/hosts in the capture initramfs, as getaddrinfo does for
 * fence_kdump_send) and starts sending. A node that does not resolve or a send that fails is
 * logged once and the others go on: the dump never waits for the cluster.
 */
export async function startFenceKdump(f: FencePlan, log: (line: string) => void, opts: { lookup?: Lookup } = {}): Promise<FenceNotifier> {
  const lookup = opts.lookup ?? systemLookup;
  const family = f.family === 'ipv4' ? 4 : f.family === 'ipv6' ? 6 : 0;
  const nodes: { name: string; address: string; family: 4 | 6; failed: boolean }[] = [];
  for (const name of f.nodes) {
    try {
      const r = await lookup(name, family);
      nodes.push({ name, address: r.address, family: r.family, failed: false });
    } catch (err) {
      log(`lastword: warning: fence_kdump: cannot resolve node ${name}: ${describeError(err)}; it is not notified`);
    }
  }
  let sent = 0;
  if (!nodes.length) {
    log('lastword: warning: fence_kdump: no node to notify; the cluster may fence this node while it dumps');
    return { get sent() { return sent; }, stop: async () => {} };
  }
  const sockets = new Map<4 | 6, dgram.Socket>();
  for (const fam of new Set(nodes.map((n) => n.family))) {
    const s = dgram.createSocket(fam === 6 ? 'udp6' : 'udp4');
    s.on('error', (err) => log(`lastword: warning: fence_kdump: socket: ${describeError(err)}`));
    s.unref();
    sockets.set(fam, s);
  }
  const msg = fenceKdumpMessage();
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const round = () => {
    for (const n of nodes) {
      inFlight++;
      sockets.get(n.family)!.send(msg, f.port, n.address, (err) => {
        if (--inFlight === 0) drained?.();
        if (!err) { sent++; return; }
        if (!n.failed) log(`lastword: warning: fence_kdump: cannot send to ${n.name} (${n.address}): ${describeError(err)}`);
        n.failed = true;
      });
    }
  };
  log(`lastword: fence_kdump: notifying ${nodes.map((n) => (n.name === n.address ? n.name : `${n.name} (${n.address})`)).join(', ')} on udp port ${f.port} every ${f.intervalS} s${f.count ? `, ${f.count} times` : ''}`);
  round();
  let rounds = 1;
  let timer: NodeJS.Timeout | undefined;
  if (f.count !== 1) {
    timer = setInterval(() => {
      round();
      if (f.count && ++rounds >= f.count) { clearInterval(timer); timer = undefined; }
    }, f.intervalS * 1000);
    timer.unref();
  }
  return {
    get sent() { return sent; },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      // the datagrams already handed to send() go out before the sockets close
      if (inFlight > 0) await new Promise<void>((resolve) => { drained = resolve; });
      await Promise.all([...sockets.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      sockets.clear();
    },
  };
}
