// The capture's network, taken from the running system when the image is built, as kdumpctl does
// (kdump_collect_netif_usage): for each host the capture must reach (the NFS server, the SSH host,
// fence_kdump_nodes), the route this machine takes to it names the interface, its MAC, its address
// and the gateway. The capture kernel has no udev and names NICs eth0, eth1... in probe order, so the
// interface is pinned by MAC with dracut's ifname=, then configured like here: ip=<if>:dhcp when
// its address is a DHCP lease (it has a lifetime), else the same static address and gateway.
// Without this, a fleet with static addresses and no DHCP server would lose every network dump.
import { spawnSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { LastwordError } from '../errors.ts';
import { validInterfaceName } from '../config/ip.ts';
import { planTargets, type Plan } from '../config/plan.ts';

/** Link kinds a plain ip= on one NIC cannot reproduce: the capture would need the whole stack. */
const STACKED_KINDS = new Set(['bond', 'bridge', 'team', 'vlan', 'macvlan', 'macvtap', 'ipvlan', 'vxlan', 'openvswitch', 'ipoib']);

export interface RouteInfo { dev: string; prefsrc?: string; gateway?: string }
export interface LinkInfo { ifname: string; address?: string; mtu?: number; link_type?: string; linkinfo?: { info_kind?: string } }
export interface AddrInfo { family: string; local: string; prefixlen: number; dynamic?: boolean; scope?: string }

/** How the derivation reads this machine's network; `ip -j` by default, injectable for tests. */
export interface HostNetworkProbe {
  resolve(host: string): Promise<string>;
  route(address: string): Promise<RouteInfo>;
  link(dev: string): Promise<LinkInfo>;
  addresses(dev: string): Promise<AddrInfo[]>;
  resolvConf(): string | undefined;
}

export interface HostNetwork {
  /** command-line words for HOST_NETWORK_FILE */
  words: string[];
  /** one line per destination: how it is reached */
  notes: string[];
}

/** The hosts the capture talks to, as the configs name them. */
export function networkDestinations(plan: Plan): string[] {
  const out: string[] = [];
  for (const t of planTargets(plan)) {
    if (t.kind === 'nfs') out.push(t.server);
    if (t.kind === 'ssh' || t.kind === 'ftp') out.push(t.host);
  }
  out.push(...(plan.fence?.nodes ?? []));
  return [...new Set(out.map((h) => h.replace(/^\[(.*)\]$/, '$1')))];
}

/** kdump-utils' kdump_setup_ifname: a kernel-style name (eth0) could be another NIC's in the capture kernel. */
export function captureInterfaceName(dev: string): string {
  const name = /^eth\d+$/.test(dev) ? `kdump-${dev}` : dev;
  if (!validInterfaceName(name)) throw new LastwordError('ENET_HOST_CONFIG', `interface ${dev}: no valid capture-kernel name for it`);
  return name;
}

function bracket(a: string): string {
  return isIP(a) === 6 ? `[${a}]` : a;
}

/** nameserver lines of resolv.conf, skipping systemd-resolved's local stub (not running in the capture). */
export function parseNameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && isIP(m[1]!) && !/^127\./.test(m[1]!) && m[1] !== '::1') out.push(m[1]!);
  }
  return out;
}

/**
 * Words for the capture command line that reproduce how this machine reaches `plan`'s hosts.
 * Throws ENET_HOST_CONFIG (naming the host and interface) when that cannot be carried over.
 */
export async function deriveHostNetwork(plan: Plan, probe: HostNetworkProbe): Promise<HostNetwork> {
  const words: string[] = [];
  const notes: string[] = [];
  const done = new Map<string, string>();
  let named = false;
  let remoteIp: string | undefined;
  for (const host of networkDestinations(plan)) {
    const address = isIP(host) ? host : await probe.resolve(host);
    if (!isIP(host)) named = true;
    remoteIp ??= address;
    const route = await probe.route(address);
    if (route.dev === 'lo') throw new LastwordError('ENET_HOST_CONFIG', `${host} (${address}) is this machine itself: the capture cannot reach it`);
    if (done.has(route.dev)) { notes.push(`${host} (${address}): via ${route.dev} as well`); continue; }
    const link = await probe.link(route.dev);
    const kind = link.linkinfo?.info_kind;
    if (kind && STACKED_KINDS.has(kind)) {
      throw new LastwordError('ENET_HOST_CONFIG', `${host} (${address}) is reached through ${route.dev}, a ${kind}: lastword cannot rebuild a ${kind} in the capture; put ip= (and ifname=) for one of its NICs in KDUMP_COMMANDLINE_APPEND`);
    }
    if (link.link_type !== 'ether' || !link.address) {
      throw new LastwordError('ENET_HOST_CONFIG', `${host} (${address}) is reached through ${route.dev} (${link.link_type ?? 'no link type'}), not an Ethernet NIC; put ip= in KDUMP_COMMANDLINE_APPEND`);
    }
    const addrs = await probe.addresses(route.dev);
    const family = isIP(address) === 6 ? 'inet6' : 'inet';
    const a = addrs.find((x) => x.family === family && x.local === route.prefsrc)
      ?? addrs.find((x) => x.family === family && x.scope === 'global');
    if (!a) throw new LastwordError('ENET_HOST_CONFIG', `${route.dev} has no ${family === 'inet' ? 'IPv4' : 'IPv6'} address to reach ${host} (${address}) from`);
    const name = captureInterfaceName(route.dev);
    const mtu = link.mtu && link.mtu !== 1500 ? String(link.mtu) : '';
    words.push(`ifname=${name}:${link.address.toLowerCase()}`);
    if (a.dynamic && family === 'inet') {
      words.push(`ip=${name}:dhcp${mtu ? ':' + mtu : ''}`);
      notes.push(`${host} (${address}): ${route.dev} ${link.address} as ${name}, DHCP (its address ${a.local} is a lease)`);
    } else {
      // A dynamic IPv6 address (SLAAC) is kept as it is: derived from the MAC, it stays the same.
      const gw = route.gateway ? bracket(route.gateway) : '';
      words.push(`ip=${bracket(a.local)}::${gw}:${a.prefixlen}::${name}:none${mtu ? ':' + mtu : ''}`);
      notes.push(`${host} (${address}): ${route.dev} ${link.address} as ${name}, ${a.local}/${a.prefixlen}${route.gateway ? ` via ${route.gateway}` : ''}`);
    }
    done.set(route.dev, name);
  }
  if (!words.length) return { words, notes };
  if (remoteIp) words.push(`kdump_remote_ip=${remoteIp}`);
  // Host names resolve from the shipped /etc/hosts first; DNS servers for the rest.
  if (named) for (const ns of parseNameservers(probe.resolvConf() ?? '')) words.push(`nameserver=${ns}`);
  return { words, notes };
}

/**
 * The probe over this machine: iproute2's JSON output (`ip -j`; `ip` is the argv prefix, e.g. with
 * `-n <netns>`), getaddrinfo, and resolv.conf through `readFile`.
 */
export function ipProbe(ip: readonly string[], readFile: (file: string) => string | undefined): HostNetworkProbe {
  const json = <T>(args: string[]): T => {
    const r = spawnSync(ip[0]!, [...ip.slice(1), '-j', ...args], { encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new LastwordError('ENET_HOST_CONFIG', `ip ${args.join(' ')}: ${r.error?.message ?? (r.stderr.trim() || `exit ${r.status}`)}`);
    const out = r.stdout;
    try { return JSON.parse(out) as T; } catch {
      throw new LastwordError('ENET_HOST_CONFIG', `ip -j ${args.join(' ')}: not JSON (iproute2 too old?): ${out.slice(0, 80)}`);
    }
  };
  return {
    async resolve(host) {
      try { return (await lookup(host)).address; } catch (err) {
        throw new LastwordError('ENET_HOST_CONFIG', `${host}: cannot resolve it here (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}), so neither can the capture`);
      }
    },
    async route(address) {
      const r = json<RouteInfo[]>(['route', 'get', address])[0];
      if (!r?.dev) throw new LastwordError('ENET_HOST_CONFIG', `no route to ${address} from this machine`);
      return r;
    },
    async link(dev) {
      const l = json<LinkInfo[]>(['-d', 'link', 'show', 'dev', dev])[0];
      if (!l) throw new LastwordError('ENET_HOST_CONFIG', `ip link show ${dev}: no such interface`);
      return l;
    },
    async addresses(dev) {
      const a = json<{ addr_info?: AddrInfo[] }[]>(['addr', 'show', 'dev', dev])[0];
      return a?.addr_info ?? [];
    },
    resolvConf() {
      // systemd-resolved's stub points at itself; its upstream servers are in its own file.
      const main = readFile('/etc/resolv.conf');
      if (main !== undefined && parseNameservers(main).length === 0) return readFile('/run/systemd/resolve/resolv.conf') ?? main;
      return main;
    },
  };
}
