// Network bring-up for NFS and SSH targets from the ip= specs in the Plan, with the tools of the
// capture initramfs (busybox or iproute2 `ip`, busybox `udhcpc`) through System.exec. DHCP:
// udhcpc runs a tiny script that only prints the lease; lastword applies the lease itself with
// the same `ip` calls as a static configuration, so both paths configure the link alike.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LastwordError } from '../errors.ts';
import { prefixLength } from '../config/ip.ts';
import { needsNetwork, type IfnameSpec, type IpSpec, type NetworkPlan, type Plan } from '../config/plan.ts';
import type { System } from '../system/types.ts';

export interface NetworkTools {
  /** argv prefix of `ip` (iproute2, or ['busybox', 'ip']). */
  ip: string[];
  /** argv prefix of `udhcpc` (['udhcpc'] in the initramfs, ['busybox', 'udhcpc'] elsewhere). */
  udhcpc: string[];
}

export interface BringUpOptions {
  tools?: NetworkTools;
  /** Where the udhcpc script is written (must be executable there). */
  scriptDir?: string;
  /** resolv.conf to write nameservers to; undefined = /etc/resolv.conf. */
  resolvConf?: string;
  pollMs?: number;
}

export interface ConfiguredInterface {
  name: string;
  address: string;
  prefix: number;
  gateway?: string;
  source: 'static' | 'dhcp';
}

export interface Lease {
  ip: string;
  subnet?: string;
  router?: string;
  dns: string[];
  mtu?: number;
  hostname?: string;
}

const LEASE_TAG = 'lastword-lease';
// udhcpc calls this with bound/renew/deconfig/leasefail/nak and the lease in the environment.
const UDHCPC_SCRIPT = `#!/bin/sh
# Written by lastword: print the lease; lastword configures the interface itself.
case "$1" in
bound|renew)
  for v in ip subnet router dns mtu hostname; do eval "echo ${LEASE_TAG} $v=\\$$v"; done ;;
esac
exit 0
`;

/** Reads the lease lines the udhcpc script printed. Pure. */
export function parseLease(stdout: string): Lease | undefined {
  const kv = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = new RegExp(`^${LEASE_TAG} (\\w+)=(.*)$`).exec(line.trim());
    if (m) kv.set(m[1]!, m[2]!.trim());
  }
  const ip = kv.get('ip');
  if (!ip) return undefined;
  const mtu = Number(kv.get('mtu'));
  return {
    ip,
    subnet: kv.get('subnet') || undefined,
    router: (kv.get('router') || '').split(/\s+/)[0] || undefined,
    dns: (kv.get('dns') || '').split(/\s+/).filter(Boolean),
    mtu: Number.isInteger(mtu) && mtu > 0 ? mtu : undefined,
    hostname: kv.get('hostname') || undefined,
  };
}

/** ip= specs to use: the plan's, or DHCP on any interface when a network target or fence_kdump has none. */
export function effectiveIpSpecs(plan: Plan): IpSpec[] {
  if (plan.network.ip.length) return plan.network.ip;
  if (needsNetwork(plan)) return [{ autoconf: 'dhcp', dns: [], source: { file: '<default>' } }];
  return [];
}

/** `ip -o link show` -> interface names with their MAC, lo excluded. Pure. */
export function parseLinks(stdout: string): { name: string; mac?: string; lowerUp: boolean }[] {
  const out: { name: string; mac?: string; lowerUp: boolean }[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>.*?link\/(\w+)(?:\s+([0-9a-f:]{17}))?/.exec(line);
    if (!m || m[3] === 'loopback') continue;
    out.push({ name: m[1]!, mac: m[4], lowerUp: m[2]!.split(',').includes('LOWER_UP') });
  }
  return out;
}

class NetworkUp {
  readonly sys: System;
  readonly tools: NetworkTools;
  readonly deadline: number;
  readonly pollMs: number;
  constructor(sys: System, tools: NetworkTools, timeoutMs: number, pollMs: number) {
    this.sys = sys;
    this.tools = tools;
    this.deadline = sys.now() + timeoutMs;
    this.pollMs = pollMs;
  }

  async ip(...args: string[]): Promise<string> {
    const [file, ...pre] = this.tools.ip as [string, ...string[]];
    const r = await this.sys.exec(file, [...pre, ...args], { timeoutMs: 15_000 });
    if (r.exitCode !== 0) {
      throw new LastwordError('ENET_IP', `ip ${args.join(' ')} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
    }
    return r.stdout;
  }

  async links() {
    return parseLinks(await this.ip('-o', 'link', 'show'));
  }

  async pickInterface(spec: IpSpec): Promise<string[]> {
    if (spec.interface) return [spec.interface];
    // Wait for the NIC driver to have made at least one interface.
    for (;;) {
      const links = await this.links();
      if (links.length) return links.map((l) => l.name);
      if (this.sys.now() >= this.deadline) throw new LastwordError('ENET_NO_INTERFACE', 'no network interface appeared; is the NIC driver in the initramfs and not blacklisted?');
      await this.sys.sleep(this.pollMs);
    }
  }

  async up(name: string, spec: IpSpec): Promise<void> {
    if (spec.mac) await this.ip('link', 'set', 'dev', name, 'address', spec.mac);
    if (spec.mtu) await this.ip('link', 'set', 'dev', name, 'mtu', String(spec.mtu));
    await this.ip('link', 'set', 'dev', name, 'up');
    for (;;) {
      const l = (await this.links()).find((x) => x.name === name);
      if (l?.lowerUp) return;
      if (this.sys.now() >= this.deadline) {
        throw new LastwordError('ENET_NO_LINK', `${name}: ${l ? 'no carrier (cable, switch port or peer down?)' : 'no such interface'} before the network timeout`);
      }
      await this.sys.sleep(this.pollMs);
    }
  }

  /**
   * dracut's ifname=: waits for the interface with the MAC and gives it the name. The capture
   * kernel has no udev, so its NICs are eth0, eth1... in probe order; a name held by another
   * interface is moved out of the way first.
   */
  async rename(want: IfnameSpec): Promise<void> {
    for (;;) {
      const links = await this.links();
      const l = links.find((x) => x.mac === want.mac);
      if (l) {
        if (l.name === want.name) return;
        const holder = links.find((x) => x.name === want.name);
        if (holder) await this.ip('link', 'set', 'dev', holder.name, 'name', `lw${holder.mac?.replace(/:/g, '').slice(-8) ?? 'old'}`);
        await this.ip('link', 'set', 'dev', l.name, 'down');
        await this.ip('link', 'set', 'dev', l.name, 'name', want.name);
        this.sys.log(`lastword: network: ${l.name} (${want.mac}) is now ${want.name} (ifname= from ${want.source.file})`);
        return;
      }
      if (this.sys.now() >= this.deadline) {
        throw new LastwordError('ENET_NO_INTERFACE', `${want.source.file}: ifname=${want.name}:${want.mac}: no interface with that MAC appeared (${links.map((x) => `${x.name} ${x.mac ?? '-'}`).join(', ') || 'none at all'}); was the NIC replaced, or is its driver missing?`);
      }
      await this.sys.sleep(this.pollMs);
    }
  }

  async address(name: string, address: string, prefix: number, peer: string | undefined, gateway: string | undefined): Promise<void> {
    await this.ip('addr', 'add', `${address}/${prefix}`, ...(peer ? ['peer', peer] : []), 'dev', name);
    if (gateway) await this.ip('route', 'replace', 'default', 'via', gateway, 'dev', name);
  }

  async dhcp(name: string, script: string): Promise<Lease | undefined> {
    const [file, ...pre] = this.tools.udhcpc as [string, ...string[]];
    const left = Math.round(Math.max(this.deadline - this.sys.now(), 3000));
    // -t tries x -T seconds between them, then -n gives up; -q quits once bound, keeping the lease.
    const tries = Math.max(1, Math.floor(left / 3000));
    const r = await this.sys.exec(file, [...pre, '-i', name, '-f', '-q', '-n', '-t', String(tries), '-T', '3', '-s', script], { timeoutMs: left + 5000 });
    return r.exitCode === 0 ? parseLease(r.stdout) : undefined;
  }
}

function writeScript(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'udhcpc.script');
  fs.writeFileSync(file, UDHCPC_SCRIPT, { mode: 0o755 });
  fs.chmodSync(file, 0o755);
  return file;
}

function maskToPrefix(mask: string): number {
  return prefixLength({ netmask: mask, autoconf: 'none', dns: [], source: { file: '' } });
}

/**
 * Brings up every ip= spec; fails (ENET_*) when one cannot be configured, since an NFS or SSH
 * target cannot be reached then. Returns what was configured, for the host-IP part of dump names.
 */
export async function bringUpNetwork(sys: System, specs: readonly IpSpec[], net: Pick<NetworkPlan, 'nameservers' | 'timeoutMs'> & Partial<Pick<NetworkPlan, 'ifnames'>>, opts: BringUpOptions = {}): Promise<ConfiguredInterface[]> {
  const tools = opts.tools ?? { ip: ['ip'], udhcpc: ['udhcpc'] };
  const n = new NetworkUp(sys, tools, net.timeoutMs, opts.pollMs ?? 200);
  await n.ip('link', 'set', 'lo', 'up');
  for (const want of net.ifnames ?? []) await n.rename(want);
  const done: ConfiguredInterface[] = [];
  const dns = [...net.nameservers];
  let script: string | undefined;
  for (const spec of specs) {
    if (spec.autoconf === 'dhcp6' || spec.autoconf === 'auto6' || spec.autoconf === 'either6' || spec.autoconf === 'ibft') {
      throw new LastwordError('ENET_UNSUPPORTED', `${spec.source.file}: ip=...${spec.autoconf} is not supported yet; use dhcp or a static address`);
    }
    const names = await n.pickInterface(spec);
    if (spec.autoconf === 'none') {
      const name = names[0]!;
      await n.up(name, spec);
      await n.address(name, spec.clientIp!, prefixLength(spec), spec.peer, spec.gateway);
      if (spec.hostname) sys.sethostname(spec.hostname);
      dns.push(...spec.dns);
      done.push({ name, address: spec.clientIp!, prefix: prefixLength(spec), gateway: spec.gateway, source: 'static' });
      continue;
    }
    script ??= writeScript(opts.scriptDir ?? '/run/lastword');
    let got = false;
    for (const name of names) {
      try {
        await n.up(name, spec);
      } catch (err) {
        if (names.length === 1) throw err;
        continue; // any-interface DHCP: try the next one with a link
      }
      const lease = await n.dhcp(name, script);
      if (!lease) continue;
      const prefix = lease.subnet ? maskToPrefix(lease.subnet) : 32;
      if (lease.mtu && !spec.mtu) await n.ip('link', 'set', 'dev', name, 'mtu', String(lease.mtu));
      await n.address(name, lease.ip, prefix, undefined, spec.gateway ?? lease.router);
      if (spec.hostname ?? lease.hostname) sys.sethostname((spec.hostname ?? lease.hostname)!);
      dns.push(...spec.dns, ...lease.dns);
      done.push({ name, address: lease.ip, prefix, gateway: spec.gateway ?? lease.router, source: 'dhcp' });
      got = true;
      break;
    }
    if (!got) {
      throw new LastwordError('ENET_DHCP', `no DHCP lease on ${names.join(', ')} within ${Math.round(net.timeoutMs / 1000)} s`);
    }
  }
  if (dns.length) {
    const file = opts.resolvConf ?? '/etc/resolv.conf';
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, [...new Set(dns)].map((d) => `nameserver ${d}`).join('\n') + '\n');
  }
  for (const c of done) sys.log(`lastword: network: ${c.name} ${c.address}/${c.prefix}${c.gateway ? ` via ${c.gateway}` : ''} (${c.source})`);
  return done;
}
