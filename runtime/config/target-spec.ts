// The target values as configs write them: `UUID=...`, `LABEL=...`, `/dev/...`,
// `server:/export`, `[2001:db8::1]:/export`, `user@host`, `user@2001:db8::1`. Shared by
// kdump.conf, kdump-tools and `lastword.target=` on the command line.
import { LastwordError } from '../errors.ts';
import { DEFAULT_KNOWN_HOSTS, DEFAULT_SSH_KEY, sourceAt, type DeviceSpec, type FtpTarget, type LocalFsTarget, type NfsTarget, type SourceRef, type SshTarget } from './plan.ts';

function bad(source: SourceRef, why: string): never {
  const at = sourceAt(source);
  throw new LastwordError('ECONFIG_TARGET', `${at}: ${why}`, { where: { ...source } });
}

/** Local filesystem types kdump-utils accepts as a target directive, plus what lastword can mount. */
export const FS_TARGET_TYPES = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'minix', 'virtiofs', 'vfat']);

export function parseDeviceSpec(value: string, source: SourceRef): DeviceSpec {
  const v = value.replace(/^"(.*)"$/, '$1');
  const m = /^(UUID|LABEL|PARTUUID|PARTLABEL)=(.+)$/i.exec(v);
  if (m) {
    const key = m[1]!.toUpperCase();
    const id = m[2]!;
    if (key === 'UUID') return { by: 'uuid', uuid: id.toLowerCase() };
    if (key === 'LABEL') return { by: 'label', label: id };
    if (key === 'PARTUUID') return { by: 'partuuid', partuuid: id.toLowerCase() };
    return { by: 'partlabel', partlabel: id };
  }
  if (v === '') bad(source, 'the device is missing');
  return { by: 'path', path: v };
}

export function describeDevice(d: DeviceSpec): string {
  switch (d.by) {
    case 'path': return d.path;
    case 'uuid': return `UUID=${d.uuid}`;
    case 'label': return `LABEL=${d.label}`;
    case 'partuuid': return `PARTUUID=${d.partuuid}`;
    case 'partlabel': return `PARTLABEL=${d.partlabel}`;
  }
}

/** `<fstype> <dev>`: a device spec, or for virtiofs the tag of a virtio-fs device. */
export function localFsTarget(fstype: string, value: string, source: SourceRef, mountOptions: string[] = []): LocalFsTarget {
  const device = parseDeviceSpec(value, source);
  if (fstype === 'virtiofs' && (device.by !== 'path' || device.path.startsWith('/'))) bad(source, `virtiofs takes the tag of a virtio-fs device (virtiofs myfs), not '${value}'`);
  return { kind: 'local-fs', fstype, device, mountOptions, source };
}

/**
 * kdump-config's FTP="host[:dir]": FTP_REMOTE_HOST="${FTP%%:*}", FTP_COREDIR="${FTP#*:}" or "/";
 * login and port as FTP_USER, FTP_PASSWORD and FTP_PORT give them (busybox ftpput's defaults).
 */
export function parseFtpSpec(value: string, source: SourceRef, login: { user?: string; password?: string; port?: number } = {}): FtpTarget {
  const colon = value.indexOf(':');
  const host = colon < 0 ? value : value.slice(0, colon);
  const dir = colon < 0 ? '/' : value.slice(colon + 1) || '/';
  if (!host) bad(source, `'${value}' has no host (expected host:/directory)`);
  return { kind: 'ftp', host, port: login.port ?? 21, user: login.user || 'anonymous', password: login.password || 'busybox@', dir, source };
}

/** `server:/export` or `[v6addr]:/export`. */
export function parseNfsSpec(value: string, source: SourceRef, mountOptions: string[] = []): NfsTarget {
  const m = /^\[([^\]]+)\]:(\/.*)$/.exec(value) ?? /^([^:\s]+):(\/.*)$/.exec(value);
  if (!m) bad(source, `'${value}' is not an NFS export (server:/path)`);
  const opts = mountOptions.slice();
  const num = (key: string) => {
    const o = opts.find((x) => x.startsWith(key + '='));
    return o === undefined ? undefined : Number(o.slice(key.length + 1));
  };
  return { kind: 'nfs', server: m[1]!, export: m[2]!, mountOptions: opts, timeo: num('timeo'), retrans: num('retrans'), source };
}

/** `user@host`, `user@host:port` (IPv4/names), `user@[v6]:port` or `user@v6addr`. */
export function parseSshSpec(value: string, source: SourceRef, key = DEFAULT_SSH_KEY): SshTarget {
  const at = value.lastIndexOf('@');
  if (at <= 0 || at === value.length - 1) bad(source, `'${value}' is not user@host`);
  const user = value.slice(0, at);
  let host = value.slice(at + 1);
  let port = 22;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(host);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2]) port = Number(bracket[2]);
  } else if ((host.match(/:/g) ?? []).length === 1) {
    const [h, p] = host.split(':') as [string, string];
    if (!/^\d+$/.test(p)) bad(source, `port '${p}' of '${value}' is not a number`);
    host = h;
    port = Number(p);
  }
  if (port < 1 || port > 65535) bad(source, `port ${port} of '${value}' is out of range`);
  return { kind: 'ssh', user, host, port, key, knownHosts: DEFAULT_KNOWN_HOSTS, transport: 'sftp', source };
}
