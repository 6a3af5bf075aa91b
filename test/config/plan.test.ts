// The Plan from real distribution configs (Fedora kdump-utils' generated kdump.conf and
// sysconfig, Debian kdump-tools 1.8.1's /etc/default/kdump-tools from the .deb) and from variants
// that use every directive, through the parsers, loadPlan and the `lastword plan` CLI.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { LastwordError } from '../../runtime/errors.ts';
import { loadPlan } from '../../runtime/config/load.ts';
import { planTargets, type Plan } from '../../runtime/config/plan.ts';

const root = path.resolve(import.meta.dirname, '../..');
const fixtures = path.join(root, 'test/fixtures/config');
const fx = (name: string) => path.join(fixtures, name);
const plan = (config: string, cmdline = '') => loadPlan({ config: fx(config), cmdline });
const warningsAt = (p: Plan, line: number) => p.warnings.filter((w) => w.line === line).map((w) => w.message).join(' | ');

/** A temp dir removed after the test. */
function tempDir(t: TestContext, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function throwsConfig(fn: () => unknown, code: string, where: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof LastwordError, String(err));
    assert.equal(err.code, code);
    assert.match(err.oneLine(), where);
    return true;
  });
}

test("Fedora's shipped kdump.conf gives the root target, /var/crash and makedumpfile -l -d 31", () => {
  const p = plan('fedora-kdump.conf');
  assert.equal(p.layout, 'fedora');
  assert.equal(p.target.kind, 'root');
  assert.equal(p.path, '/var/crash');
  assert.deepEqual([p.collector.program, p.collector.dumpLevel, p.collector.codec, p.collector.format, p.collector.messageLevel], ['makedumpfile', 31, 'lzo', 'kdump', 7]);
  assert.equal(p.collector.source.line, fs.readFileSync(fx('fedora-kdump.conf'), 'utf8').split('\n').findIndex((l) => l.startsWith('core_collector')) + 1);
  assert.equal(p.finalAction, 'reboot');
  assert.equal(p.failureAction, 'reboot');
  assert.deepEqual(p.warnings, []);
});

test("Fedora's shipped sysconfig/kdump sets the kexec append and remove lists", (t) => {
  const dir = tempDir(t, 'lastword-plan-');
  fs.mkdirSync(path.join(dir, 'etc/sysconfig'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'etc/kdump/pre.d'), { recursive: true });
  fs.copyFileSync(fx('fedora-kdump.conf'), path.join(dir, 'etc/kdump.conf'));
  fs.copyFileSync(fx('fedora-sysconfig-kdump'), path.join(dir, 'etc/sysconfig/kdump'));
  fs.writeFileSync(path.join(dir, 'etc/kdump/pre.d/20-second'), '');
  fs.writeFileSync(path.join(dir, 'etc/kdump/pre.d/10-first'), '');
  fs.writeFileSync(path.join(dir, 'proc-cmdline'), '');
  const p = loadPlan({ root: dir, cmdline: 'BOOT_IMAGE=/vmlinuz ro irqpoll reset_devices' });
  assert.deepEqual(p.sources, ['/etc/sysconfig/kdump', '/etc/kdump.conf', '<cmdline>']);
  assert.ok(p.kexec.commandlineAppend.includes('reset_devices'));
  assert.ok(p.kexec.commandlineAppend.includes('pcie_ports=compat'));
  assert.ok(p.kexec.commandlineRemove.includes('hugepages'));
  assert.deepEqual(p.kexec.kexecArgs, ['-s']);
  assert.deepEqual(p.hooks.pre.map((h) => h.path), ['/etc/kdump/pre.d/10-first', '/etc/kdump/pre.d/20-second']);
  assert.equal(p.modules.resetDevices, true);
  assert.deepEqual(p.warnings, []);
});

test("Debian's shipped /etc/default/kdump-tools gives kdump-tools' defaults", () => {
  const p = plan('debian-kdump-tools');
  assert.equal(p.layout, 'debian');
  assert.equal(p.enabled, true);
  assert.equal(p.target.kind, 'root');
  assert.equal(p.path, '/var/crash');
  assert.deepEqual([p.collector.dumpLevel, p.collector.codec], [31, 'zlib']);
  assert.equal(p.kexec.kernel, '/var/lib/kdump/vmlinuz');
  assert.equal(p.kexec.initrd, '/var/lib/kdump/initrd.img');
  assert.equal(p.dmesg, true);
  assert.equal(p.numDumps, 0);
  assert.deepEqual(p.warnings, []);
});

test('every kdump.conf directive lands in the plan, legacy ones warn with their line', () => {
  const p = plan('fedora-every-directive.conf');
  assert.deepEqual(p.target.kind === 'local-fs' && [p.target.fstype, p.target.device], ['xfs', { by: 'label', label: 'crashfs' }]);
  assert.equal(p.target.source.line, 3);
  assert.equal(p.path, '/dumps');
  // -F is dropped for a filesystem target, as kdump.sh does.
  assert.deepEqual([p.collector.dumpLevel, p.collector.codec, p.collector.flattened, p.collector.messageLevel], [17, 'zstd', false, 1]);
  assert.deepEqual(p.hooks.post.map((h) => [h.path, ...h.args]), [['/usr/local/bin/post.sh', 'two words']]);
  assert.equal(p.hooks.pre[0]!.path, '/usr/local/bin/pre.sh');
  assert.equal(p.hooks.emergency[0]!.path, '/usr/local/bin/emergency.sh');
  assert.deepEqual(p.image.extraBins.map((b) => [b.path, b.source.line]), [['/usr/bin/lftp', 10], ['/usr/bin/curl', 10]]);
  assert.deepEqual(p.modules.extra, ['gfs2', 'dm_mod', 'nvme']);
  assert.equal(p.failureAction, 'shell'); // the later failure_action wins over `default`
  assert.equal(p.finalAction, 'poweroff');
  assert.deepEqual([p.image.forceRebuild, p.image.forceNoRebuild], [true, false]);
  assert.deepEqual(p.image.dracutArgs, ['--omit-drivers', 'cfg80211 snd', '--add-drivers', 'ext2 ext3']);
  assert.deepEqual(p.modules.blacklist.map((b) => [b.module, b.source.line]), [['floppy', 21], ['pcspkr', 21]]);
  assert.equal(p.modules.diskTimeoutMs, 30_000);
  assert.ok(p.warnings.some((w) => /'sshkey' is set but the target is not ssh/.test(w.message)));
  assert.match(warningsAt(p, 13), /old name of 'failure_action'/);
  assert.deepEqual(p.fence, { nodes: ['node1', 'node2'], port: 7410, family: 'auto', count: 0, intervalS: 10, source: { file: fx('fedora-every-directive.conf'), line: 20 } });
  assert.equal(warningsAt(p, 19), '');
  assert.match(warningsAt(p, 23), /link_delay.*deprecated/);
  assert.match(warningsAt(p, 24), /debug_mem_level.*deprecated/);
  assert.match(warningsAt(p, 25), /options.*deprecated/);
  assert.match(warningsAt(p, 26), /unknown directive 'frobnicate'/);
});

test('fence_kdump_args are read as fence_kdump_send reads them; a wrong one names the file and line', (t) => {
  const dir = tempDir(t, 'lw-fence-conf-');
  const conf = (text: string) => {
    const f = path.join(dir, 'kdump.conf');
    fs.writeFileSync(f, text);
    return loadPlan({ config: f, cmdline: '' });
  };
  const p = conf('fence_kdump_nodes 10.0.0.2 node-c\nfence_kdump_args --ipport=7411 -f ipv6 -c3 --interval 2 -v\n');
  assert.deepEqual([p.fence!.nodes, p.fence!.port, p.fence!.family, p.fence!.count, p.fence!.intervalS], [['10.0.0.2', 'node-c'], 7411, 'ipv6', 3, 2]);
  // defaults of fence_kdump_send: port 7410, auto, until the end, every 10 s
  assert.deepEqual(conf('fence_kdump_nodes node-b\n').fence, { nodes: ['node-b'], port: 7410, family: 'auto', count: 0, intervalS: 10, source: { file: path.join(dir, 'kdump.conf'), line: 1 } });
  assert.equal(conf('ext4 LABEL=x\n').fence, undefined);
  assert.match(conf('fence_kdump_args -p 7411\n').warnings.map((w) => w.message).join(), /without 'fence_kdump_nodes'/);
  throwsConfig(() => conf('fence_kdump_nodes a\nfence_kdump_args -p 70000\n'), 'ECONFIG', /kdump\.conf:2: fence_kdump_args: port '70000' is not a number from 1 to 65535/);
  throwsConfig(() => conf('fence_kdump_nodes a\nfence_kdump_args -x 1\n'), 'ECONFIG', /kdump\.conf:2: fence_kdump_args: unknown option '-x'/);
  throwsConfig(() => conf('fence_kdump_nodes a\nfence_kdump_args -f ipx\n'), 'ECONFIG', /kdump\.conf:2: fence_kdump_args: family 'ipx'/);
  throwsConfig(() => conf('fence_kdump_nodes a\nfence_kdump_args -i\n'), 'ECONFIG', /kdump\.conf:2: fence_kdump_args: '-i' needs a value/);
});

test('ssh, nfs and raw targets: IPv6 in brackets, port, sshkey, scp collector, UUID case', () => {
  const s = plan('fedora-ssh.conf');
  assert.deepEqual(s.target.kind === 'ssh' && [s.target.user, s.target.host, s.target.port, s.target.key, s.target.transport],
    ['kdump', '2001:db8::1', 2222, '/root/.ssh/kdump_id_ed25519', 'sftp']);
  assert.equal(s.collector.flattened, true);
  const n = plan('fedora-nfs.conf');
  assert.deepEqual(n.target.kind === 'nfs' && [n.target.server, n.target.export], ['2001:db8::1:2:3:4', '/export/tmp']);
  assert.deepEqual([n.collector.program, n.collector.dumpLevel, n.collector.format, n.collector.codec], ['scp', 0, 'elf', 'none']);
  const r = plan('fedora-raw.conf');
  assert.deepEqual(r.target.kind === 'raw' && r.target.device, { by: 'uuid', uuid: '03138356-5e61-4ab3-b58e-27507ac41937' });
  assert.equal(r.finalAction, 'halt');
});

test('dracut_args --mount defines the target as kdumpctl reads it', (t) => {
  const dir = tempDir(t, 'lastword-plan-');
  const conf = path.join(dir, 'kdump.conf');
  fs.writeFileSync(conf, 'path /crash\ndracut_args --mount "nfs.example.org:/export/crash /var/crash nfs4 defaults,timeo=30"\n');
  const p = loadPlan({ config: conf, cmdline: '' });
  assert.deepEqual(p.target.kind === 'nfs' && [p.target.server, p.target.export, p.target.mountOptions, p.target.timeo], ['nfs.example.org', '/export/crash', ['timeo=30'], 30]);
  fs.writeFileSync(conf, 'dracut_args --mount "LABEL=dumps /mnt xfs rw,noatime" --add-drivers xfs\n');
  const q = loadPlan({ config: conf, cmdline: '' });
  assert.deepEqual(q.target.kind === 'local-fs' && [q.target.fstype, q.target.device, q.target.mountOptions], ['xfs', { by: 'label', label: 'dumps' }, ['rw', 'noatime']]);
  fs.writeFileSync(conf, 'ext4 /dev/vdb1\ndracut_args --mount "LABEL=dumps /mnt xfs"\n');
  assert.throws(() => loadPlan({ config: conf, cmdline: '' }), /kdump\.conf:2: only one dump target is allowed; the first is at line 1/);
});

test('virtiofs takes the tag of a virtio-fs device; a device spec or a path there is refused naming the line', (t) => {
  const dir = tempDir(t, 'lastword-plan-');
  const conf = path.join(dir, 'kdump.conf');
  fs.writeFileSync(conf, 'virtiofs dumpfs\npath /crash\n');
  const p = loadPlan({ config: conf, cmdline: '' });
  assert.deepEqual(p.target.kind === 'local-fs' && [p.target.fstype, p.target.device], ['virtiofs', { by: 'path', path: 'dumpfs' }]);
  for (const bad of ['LABEL=dumps', '/dev/vdb1']) {
    fs.writeFileSync(conf, `path /crash\nvirtiofs ${bad}\n`);
    throwsConfig(() => loadPlan({ config: conf, cmdline: '' }), 'ECONFIG_TARGET', new RegExp(`kdump\\.conf:2: virtiofs takes the tag of a virtio-fs device \\(virtiofs myfs\\), not '${bad}'`));
  }
});

test('a second target directive is refused naming both lines', () => {
  throwsConfig(() => plan('fedora-two-targets.conf'), 'ECONFIG', /fedora-two-targets\.conf:3: only one dump target.*line 2/);
});

test('a dump level out of range is refused naming file and line', () => {
  throwsConfig(() => plan('fedora-bad-level.conf'), 'ECONFIG_COLLECTOR', /fedora-bad-level\.conf:2: dump level 99 is out of range/);
});

test('kdump-tools quoting, expansion, continuation lines, HOSTTAG, retention and SSH over NFS', () => {
  const p = plan('debian-ssh-nfs.kdump-tools');
  assert.equal(p.path, '/srv/crash dumps');
  assert.equal(p.kexec.kernel, '/var/lib/kdump/vmlinuz');
  assert.equal(p.kexec.initrd, '/var/lib/kdump/initrd.img');
  assert.equal(p.failureCommand, "echo 'makedumpfile FAILED.'; /bin/bash; reboot -f");
  assert.equal(p.failureAction, 'reboot');
  assert.equal(p.dmesg, false);
  assert.equal(p.numDumps, 3);
  assert.deepEqual([p.collector.dumpLevel, p.collector.codec, p.collector.messageLevel], [1, 'lzo', 7]);
  assert.equal(p.collector.source.line, 10);
  assert.deepEqual(p.kexec.commandlineAppend, ['reset_devices', 'nr_cpus=2', 'irqpoll']);
  assert.equal(p.naming.hostTag, 'hostname');
  assert.deepEqual(p.target.kind === 'ssh' && [p.target.user, p.target.host, p.target.key, p.target.transport],
    ['kdump', 'dumphost.example.org', '/root/.ssh/kdump_ed25519', 'flattened']);
  // kdump-config savecore: SSH, then NFS, each its own dump.
  assert.deepEqual(p.alsoTargets.map((t) => t.kind === 'nfs' && [t.server, t.export, t.source.line]), [['nfs.example.org', '/export/crash', 15]]);
  assert.equal(p.warnings.filter((w) => w.line === 15).length, 0);
  assert.match(warningsAt(p, 20), /not a variable assignment/);
  assert.match(warningsAt(p, 4), /unknown variable BASE/);
});

test('kdump-tools NFS gets kdump-config mount options with NFS_TIMEO / NFS_RETRANS defaults', () => {
  const p = plan('debian-nfs.kdump-tools');
  assert.deepEqual(p.target.kind === 'nfs' && [p.target.server, p.target.export, p.target.mountOptions, p.target.timeo, p.target.retrans],
    ['10.0.0.1', '/srv/nfs/crash', ['nolock', 'tcp', 'soft', 'timeo=600', 'retrans=3'], 600, 3]);
  assert.equal(p.failureAction, 'poweroff');
  assert.equal(p.failureCommand, undefined);
  assert.equal(p.collector.codec, 'zstd');
});

test("kdump-tools FTP= as kdump-config splits it: host, FTP_COREDIR or /, ftpput's anonymous login, FTP_PORT; with SSH and NFS each gets a dump, FTP first", (t) => {
  const tmp = tempDir(t, 'lw-ftp-conf-');
  const conf = (name: string, text: string) => { const f = path.join(tmp, name); fs.writeFileSync(f, text); return loadPlan({ config: f, cmdline: '' }); };
  const a = conf('kdump-tools', 'FTP="dumps.example:/pub/crash"\nFTP_USER="kd"\nFTP_PASSWORD="s3cret"\nFTP_PORT=2121\n');
  assert.deepEqual(a.target.kind === 'ftp' && [a.target.host, a.target.dir, a.target.user, a.target.password, a.target.port, a.target.source.line], ['dumps.example', '/pub/crash', 'kd', 's3cret', 2121, 1]);
  const b = conf('kdump-tools', 'FTP=dumps.example\n');
  assert.deepEqual(b.target.kind === 'ftp' && [b.target.dir, b.target.user, b.target.password, b.target.port], ['/', 'anonymous', 'busybox@', 21]);
  const c = conf('kdump-tools', 'FTP=dumps.example:incoming\n');
  assert.equal(c.target.kind === 'ftp' && c.target.dir, 'incoming');
  // kdump-config savecore: FTP, then SSH, then NFS (or local only when neither FTP nor SSH is set).
  const d = conf('kdump-tools', 'NFS=10.0.0.1:/srv\nSSH=kd@sshhost\nFTP=dumps.example:/x\n');
  assert.deepEqual(planTargets(d).map((t) => `${t.kind}:${t.source.line}`), ['ftp:3', 'ssh:2', 'nfs:1']);
  assert.deepEqual(d.warnings, []);
  const e = conf('kdump-tools', 'SSH=kd@sshhost\nFTP=dumps.example:/x\n');
  assert.deepEqual(planTargets(e).map((t) => t.kind), ['ftp', 'ssh']);
  // One target on the command line replaces them all.
  const f = loadPlan({ config: path.join(tmp, 'kdump-tools'), cmdline: 'lastword.target=root' });
  assert.deepEqual(planTargets(f).map((t) => t.kind), ['root']);
  // lastword.target=ftp: keeps the login and port FTP_USER, FTP_PASSWORD and FTP_PORT gave
  conf('kdump-tools', 'SSH=kd@sshhost\nFTP=dumps.example:/x\nFTP_USER=kd\nFTP_PASSWORD=pw\nFTP_PORT=2121\n');
  const g = loadPlan({ config: path.join(tmp, 'kdump-tools'), cmdline: 'lastword.target=ftp:10.0.0.9:/incoming' });
  assert.deepEqual(planTargets(g).map((t) => t.kind === 'ftp' && [t.host, t.dir, t.port, t.user, t.password, t.source.file]), [['10.0.0.9', '/incoming', 2121, 'kd', 'pw', '<cmdline>']]);
  const h = loadPlan({ config: path.join(tmp, 'kdump-tools'), cmdline: 'lastword.target=ftp:10.0.0.9 lastword.target=ftp:10.0.0.8' });
  assert.deepEqual(h.target.kind === 'ftp' && [h.target.host, h.target.dir, h.target.user], ['10.0.0.8', '/', 'kd']);
  const v = loadPlan({ config: path.join(tmp, 'kdump-tools'), cmdline: 'lastword.target=virtiofs:dumpfs' });
  assert.deepEqual(v.target.kind === 'local-fs' && [v.target.fstype, v.target.device], ['virtiofs', { by: 'path', path: 'dumpfs' }]);
  throwsConfig(() => loadPlan({ config: path.join(tmp, 'kdump-tools'), cmdline: 'lastword.target=virtiofs:LABEL=x' }), 'ECONFIG_TARGET', /<cmdline>: virtiofs takes the tag/);
  throwsConfig(() => conf('kdump-tools', 'FTP=h:/x\nFTP_PORT=99999\n'), 'ECONFIG', /kdump-tools:2: FTP_PORT="99999" is not a port number/);
  throwsConfig(() => conf('kdump-tools', 'FTP=":/x"\n'), 'ECONFIG_TARGET', /kdump-tools:1: ':\/x' has no host/);
});

test("kdump-tools KDUMP_COMPRESSION: bzip2, gzip, lz4, xz, zstd; anything else disables it with a warning, as kdump-config's check_compression", (t) => {
  const tmp = tempDir(t, 'lw-comp-conf-');
  const conf = (text: string) => { const f = path.join(tmp, 'kdump-tools'); fs.writeFileSync(f, text); return loadPlan({ config: f, cmdline: '' }); };
  for (const m of ['bzip2', 'gzip', 'lz4', 'xz', 'zstd']) {
    const p = conf(`USE_KDUMP=1\nKDUMP_COMPRESSION=${m}\n`);
    assert.deepEqual(p.postCompression, { method: m, source: { file: path.join(tmp, 'kdump-tools'), line: 2 } });
  }
  const bad = conf('KDUMP_COMPRESSION=rar\n');
  assert.equal(bad.postCompression, undefined);
  assert.match(warningsAt(bad, 1), /KDUMP_COMPRESSION 'rar' is not supported .*compression disabled/);
  assert.equal(conf('KDUMP_COMPRESSION=\n').postCompression, undefined);
  assert.deepEqual(conf('KDUMP_COMPRESSION=\n').warnings, []);
});

test("kdump-tools SSH_KDUMP_RETRY and NFS_MOUNT_RETRY: kdump-config's 16 and 4 tries, 3 s apart, unless the file sets them", (t) => {
  const tmp = tempDir(t, 'lw-retry-conf-');
  const f = path.join(tmp, 'kdump-tools');
  const conf = (text: string) => { fs.writeFileSync(f, text); return loadPlan({ config: f, cmdline: '' }); };
  const retries = (p: Plan) => planTargets(p).map((t) => (t.kind === 'ssh' || t.kind === 'nfs' ? [t.kind, t.retry?.attempts, t.retry?.delayMs, t.retry?.source.line] : [t.kind]));
  assert.deepEqual(retries(conf('SSH="kdump@10.0.0.2"\nNFS="10.0.0.3:/export"\n')), [['ssh', 16, 3000, 1], ['nfs', 4, 3000, 2]]);
  const set = conf('SSH="kdump@10.0.0.2"\nNFS="10.0.0.3:/export"\nSSH_KDUMP_RETRY=3\nNFS_MOUNT_RETRY="10"\n');
  assert.deepEqual(retries(set), [['ssh', 3, 3000, 3], ['nfs', 10, 3000, 4]]);
  assert.deepEqual(set.warnings, []);
  const zero = conf('NFS="10.0.0.3:/export"\nNFS_MOUNT_RETRY=0\n');
  assert.deepEqual(retries(zero), [['nfs', 1, 3000, 2]]);
  assert.match(warningsAt(zero, 2), /NFS_MOUNT_RETRY=0: kdump-config would skip the connection check; lastword tries once/);
  throwsConfig(() => conf('SSH="kdump@10.0.0.2"\n\nSSH_KDUMP_RETRY=lots\n'), 'ECONFIG', /kdump-tools:3: SSH_KDUMP_RETRY="lots" is not a number/);
  // Fedora's targets keep lastword's own 4 tries, 5 s apart (targets/open.ts)
  const fedora = path.join(tmp, 'kdump.conf');
  fs.writeFileSync(fedora, 'ssh kdump@10.0.0.2\n');
  assert.equal((loadPlan({ config: fedora, cmdline: '' }).target as { retry?: unknown }).retry, undefined);
});

test('shell syntax that would need a shell is refused naming the line, never run', () => {
  throwsConfig(() => plan('debian-unterminated.kdump-tools'), 'ECONFIG_SYNTAX', /debian-unterminated\.kdump-tools:2: unterminated double quote/);
  throwsConfig(() => plan('debian-command-substitution.kdump-tools'), 'ECONFIG_SYNTAX', /debian-command-substitution\.kdump-tools:2: command substitution/);
});

test('lastword.* on the kernel command line overrides the config files', () => {
  const p = plan('fedora-every-directive.conf',
    'ro quiet lastword.dump_level=1 lastword.codec=zlib lastword.target=ext4:UUID=ABCD-1234 lastword.path=/x ' +
    'lastword.final_action=shell lastword.failure_action=dump_to_rootfs lastword.num_dumps=2 lastword.dmesg=0 ' +
    'lastword.hook_timeout=5 lastword.bogus=1 "lastword.extra_modules=virtio_blk,ext4"');
  assert.equal(p.collector.dumpLevel, 1);
  assert.equal(p.collector.codec, 'zlib');
  assert.deepEqual(p.target.kind === 'local-fs' && [p.target.fstype, p.target.device], ['ext4', { by: 'uuid', uuid: 'abcd-1234' }]);
  assert.equal(p.path, '/x');
  assert.equal(p.finalAction, 'shell');
  assert.equal(p.failureAction, 'dump_to_rootfs');
  assert.equal(p.numDumps, 2);
  assert.equal(p.dmesg, false);
  assert.ok([...p.hooks.pre, ...p.hooks.post, ...p.hooks.emergency].every((h) => h.timeoutMs === 5000));
  assert.deepEqual(p.modules.extra.slice(-2), ['virtio_blk', 'ext4']);
  assert.ok(p.warnings.some((w) => w.file === '<cmdline>' && /lastword\.bogus/.test(w.message)));
  throwsConfig(() => plan('fedora-kdump.conf', 'lastword.final_action=explode'), 'ECONFIG_CMDLINE', /<cmdline>: lastword\.final_action: 'explode'/);
  const s = plan('fedora-kdump.conf', 'lastword.target=ssh:root@10.0.0.1:2022 lastword.known_hosts=/etc/kh lastword.ssh_transport=flattened');
  assert.deepEqual(s.target.kind === 'ssh' && [s.target.host, s.target.port, s.target.knownHosts, s.target.transport], ['10.0.0.1', 2022, '/etc/kh', 'flattened']);
  assert.equal(plan('fedora-kdump.conf', 'lastword.target=stdout').target.kind, 'stdout');
  assert.equal(plan('fedora-kdump.conf', '').stallTimeoutMs, 300_000);
  assert.equal(plan('fedora-kdump.conf', 'lastword.stall_timeout=0').stallTimeoutMs, 0);
  assert.equal(plan('fedora-kdump.conf', 'lastword.stall_timeout=45').stallTimeoutMs, 45_000);
  throwsConfig(() => plan('fedora-kdump.conf', 'lastword.stall_timeout=soon'), 'ECONFIG_CMDLINE', /lastword\.stall_timeout: 'soon' is not a number of seconds/);
});

test('every blacklist on the command line is collected with its source', () => {
  const p = plan('fedora-every-directive.conf', 'modprobe.blacklist=nouveau,radeon rd.driver.blacklist=mlx5_core module_blacklist=kvm reset_devices');
  assert.deepEqual(p.modules.blacklist.map((b) => b.module), ['floppy', 'pcspkr', 'nouveau', 'radeon', 'mlx5_core', 'kvm']);
  assert.match(p.modules.blacklist[2]!.reason, /modprobe\.blacklist=/);
  assert.equal(p.modules.resetDevices, true);
});

test('lastword plan prints the plan as text and JSON, and exits 1 naming the bad line', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'runtime/main.ts'), 'plan', ...args], { encoding: 'utf8' });
  const text = run('--config', fx('fedora-every-directive.conf'), '--cmdline', 'ip=dhcp');
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^target: +xfs LABEL=crashfs/m);
  assert.match(text.stdout, /fedora-every-directive\.conf:26: unknown directive 'frobnicate'/);
  assert.match(text.stdout, /^ {2}blacklist: +floppy \(kdump\.conf blacklist\) +\[.*fedora-every-directive\.conf:21\]$/m);
  assert.match(text.stdout, /^ {2}blacklist: +nouveau \(GPU driver.*\[.*blacklist\/capture\.conf:\d+\]$/m);
  const json = run('--config', fx('debian-nfs.kdump-tools'), '--cmdline', '', '--json');
  assert.equal(json.status, 0, json.stderr);
  assert.equal(JSON.parse(json.stdout).target.server, '10.0.0.1');
  const bad = run('--config', fx('fedora-two-targets.conf'), '--cmdline', '');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /ECONFIG: .*fedora-two-targets\.conf:3: only one dump target/);
  assert.equal(run('--frob').status, 2);
});
