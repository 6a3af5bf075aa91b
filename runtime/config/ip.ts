// ip= and nameserver= of the kernel command line, in dracut's syntax (dracut.cmdline(7)), which
// extends the kernel's own nfsroot ip= syntax:
//   ip={dhcp|on|any|dhcp6|auto6|either6}
//   ip=<interface>:{dhcp|on|any|dhcp6|auto6|either6}[:[<mtu>][:<macaddr>]]
//   ip=<client-IP>:[<peer>]:<gateway>:<netmask>:<hostname>:<interface>:{none|off|dhcp|on|any|dhcp6|auto6|ibft}
//      [:[<mtu>][:<macaddr>]]  or  [:[<dns1>][:<dns2>]]
// IPv6 addresses are written in brackets. A MAC address has colons of its own, so the tail after
// the autoconf field is told apart by its shape.
import { isIP } from 'node:net';
import { LastwordError } from '../errors.ts';
import type { IfnameSpec, IpAutoconf, IpSpec, SourceRef } from './plan.ts';

const AUTOCONF: Record<string, IpAutoconf> = {
  dhcp: 'dhcp', on: 'dhcp', any: 'dhcp', 'single-dhcp': 'dhcp',
  none: 'none', off: 'none', '': 'none',
  dhcp6: 'dhcp6', auto6: 'auto6', either6: 'either6', ibft: 'ibft',
};

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

function bad(source: SourceRef, value: string, why: string): never {
  throw new LastwordError('ECONFIG_IP', `${source.file}: ip=${value}: ${why}`, { where: { ...source } });
}

/** Splits on ':' outside [...] and strips the brackets. */
function fields(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of value) {
    if (ch === '[') { depth++; continue; }
    if (ch === ']') { depth--; continue; }
    if (ch === ':' && depth === 0) { out.push(cur); cur = ''; continue; }
    cur += ch;
  }
  out.push(cur);
  return out;
}

function address(s: string, what: string, source: SourceRef, value: string): string | undefined {
  if (s === '') return undefined;
  if (isIP(s) === 0) bad(source, value, `${what} '${s}' is not an IP address`);
  return s;
}

function tail(rest: string[], spec: IpSpec, source: SourceRef, value: string): void {
  if (rest.length === 0) return;
  const joined = rest.slice(1).join(':');
  if (MAC.test(joined) || (rest[0] !== '' && /^\d+$/.test(rest[0]!))) {
    // [<mtu>][:<macaddr>]
    if (rest[0] !== '') {
      const mtu = Number(rest[0]);
      if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) bad(source, value, `MTU '${rest[0]}' is out of range`);
      spec.mtu = mtu;
    }
    if (joined !== '') {
      if (!MAC.test(joined)) bad(source, value, `'${joined}' is not a MAC address`);
      spec.mac = joined.toLowerCase();
    }
    return;
  }
  // [<dns1>][:<dns2>]
  for (const d of rest) {
    const a = address(d, 'DNS server', source, value);
    if (a) spec.dns.push(a);
  }
}

export function parseIpArgument(value: string, source: SourceRef): IpSpec {
  const f = fields(value);
  const spec: IpSpec = { autoconf: 'dhcp', dns: [], source };
  if (f.length === 1) {
    const ac = AUTOCONF[f[0]!];
    if (ac === undefined || f[0] === '' || ac === 'none' || ac === 'ibft') bad(source, value, `'${f[0]}' is not dhcp, on, any, dhcp6, auto6 or either6`);
    spec.autoconf = ac;
    return spec;
  }
  if (AUTOCONF[f[1]!] !== undefined && f[1] !== '' && isIP(f[0]!) === 0) {
    if (f[0] === '') bad(source, value, 'the interface name is empty');
    spec.interface = f[0];
    spec.autoconf = AUTOCONF[f[1]!]!;
    tail(f.slice(2), spec, source, value);
    return spec;
  }
  if (f.length < 7) bad(source, value, 'expected <client-IP>:[<peer>]:<gateway>:<netmask>:<hostname>:<interface>:<autoconf>');
  const [client, peer, gateway, netmask, hostname, iface, autoconf] = f as [string, string, string, string, string, string, string];
  const ac = AUTOCONF[autoconf];
  if (ac === undefined) bad(source, value, `autoconf '${autoconf}' is not none, off, dhcp, on, any, dhcp6, auto6 or ibft`);
  spec.autoconf = ac;
  spec.clientIp = address(client, 'client address', source, value);
  spec.peer = address(peer, 'peer address', source, value);
  spec.gateway = address(gateway, 'gateway', source, value);
  if (netmask !== '') {
    const prefixOk = /^\d+$/.test(netmask) && Number(netmask) <= 128;
    if (!prefixOk && isIP(netmask) !== 4) bad(source, value, `netmask '${netmask}' is neither a dotted mask nor a prefix length`);
    spec.netmask = netmask;
  }
  if (hostname !== '') spec.hostname = hostname;
  if (iface !== '') spec.interface = iface;
  if (ac === 'none' && spec.clientIp === undefined) bad(source, value, 'a static configuration needs a client address');
  tail(f.slice(7), spec, source, value);
  return spec;
}

/** The kernel's IFNAMSIZ less the NUL, and the characters it refuses in a name. */
export function validInterfaceName(name: string): boolean {
  return name.length > 0 && name.length <= 15 && !/[\s/:]/.test(name) && name !== '.' && name !== '..';
}

/** dracut's ifname=<interface>:<MAC> (dracut.cmdline(7)). */
export function parseIfname(value: string, source: SourceRef): IfnameSpec {
  const colon = value.indexOf(':');
  const name = colon < 0 ? value : value.slice(0, colon);
  const mac = colon < 0 ? '' : value.slice(colon + 1);
  const refuse = (why: string): never => {
    throw new LastwordError('ECONFIG_IP', `${source.file}: ifname=${value}: ${why}`, { where: { ...source } });
  };
  if (!validInterfaceName(name)) refuse(`'${name}' is not an interface name (1-15 characters, no '/', ':' or blanks)`);
  if (!MAC.test(mac)) refuse(`'${mac}' is not a MAC address (expected ifname=<interface>:<MAC>)`);
  return { name, mac: mac.toLowerCase(), source };
}

/** Prefix length of a dotted IPv4 mask or a prefix number; 32/128 when none is given. */
export function prefixLength(spec: IpSpec): number {
  const v6 = spec.clientIp !== undefined && isIP(spec.clientIp) === 6;
  if (spec.netmask === undefined) return v6 ? 128 : 32;
  if (/^\d+$/.test(spec.netmask)) return Number(spec.netmask);
  let bits = 0;
  for (const octet of spec.netmask.split('.')) {
    let n = Number(octet);
    while (n & 0x80) { bits++; n = (n << 1) & 0xff; }
  }
  return bits;
}
