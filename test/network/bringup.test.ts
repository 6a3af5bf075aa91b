// ip= bring-up for real, between two network namespaces this test creates and joins with a veth
// pair: a static address comes up and pings its peer; DHCP gets a lease from busybox udhcpd in
// the other namespace through busybox udhcpc. lastword's commands run inside the client
// namespace (ip netns exec); only sethostname is recorded instead of done, since a network
// namespace does not isolate the host name.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { parseIpArgument } from '../../runtime/config/ip.ts';
import { LastwordError } from '../../runtime/errors.ts';
import { bringUpNetwork, parseLease, parseLinks } from '../../runtime/network/bringup.ts';
import { Netns, netnsSystem } from '../support/netns.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-net-'));
const tag = String(process.pid % 100000);
let client: Netns;
let server: Netns;
const cif = `lwc${tag}`;
const sif = `lws${tag}`;
const src = { file: '<cmdline>' };

before(() => {
  client = Netns.create('lw-net-c');
  server = Netns.create('lw-net-s');
  execFileSync('ip', ['link', 'add', cif, 'netns', client.name, 'type', 'veth', 'peer', 'name', sif, 'netns', server.name]);
  server.ip('link', 'set', sif, 'up');
});

after(() => {
  client?.destroy();
  server?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A System whose programs run inside the client namespace. */
const clientSystem = () => netnsSystem(client);

function reset(): void {
  client.ip('addr', 'flush', 'dev', cif);
  server.ip('addr', 'flush', 'dev', sif);
}

test('a static ip= comes up, gets its default route and pings the peer', async () => {
  reset();
  server.ip('addr', 'add', '10.77.0.1/24', 'dev', sif);
  const sys = clientSystem();
  const resolv = path.join(tmp, 'static-resolv.conf');
  const spec = parseIpArgument(`10.77.0.2::10.77.0.1:255.255.255.0:capture:${cif}:none:10.77.0.53`, src);
  const up = await bringUpNetwork(sys, [spec], { nameservers: ['10.77.0.54'], timeoutMs: 20_000 }, { resolvConf: resolv, tools: { ip: ['ip'], udhcpc: ['busybox', 'udhcpc'] } });
  assert.deepEqual(up, [{ name: cif, address: '10.77.0.2', prefix: 24, gateway: '10.77.0.1', source: 'static' }]);
  assert.match(client.ip('route', 'show', 'default'), /default via 10\.77\.0\.1 dev /);
  client.exec('busybox', ['ping', '-c', '1', '-W', '5', '10.77.0.1']); // throws when the peer does not answer
  assert.deepEqual(sys.hostnames, ['capture']);
  assert.equal(fs.readFileSync(resolv, 'utf8'), 'nameserver 10.77.0.54\nnameserver 10.77.0.53\n');
});

test('ip=dhcp gets a lease from udhcpd in the peer namespace and pings the server', async () => {
  reset();
  server.ip('addr', 'add', '10.78.0.1/24', 'dev', sif);
  const conf = path.join(tmp, 'udhcpd.conf');
  fs.writeFileSync(conf, [
    'start 10.78.0.10', 'end 10.78.0.20', `interface ${sif}`, `lease_file ${path.join(tmp, 'leases')}`, `pidfile ${path.join(tmp, 'udhcpd.pid')}`,
    'option subnet 255.255.255.0', 'option router 10.78.0.1', 'option dns 10.78.0.53', 'option lease 600', '',
  ].join('\n'));
  fs.writeFileSync(path.join(tmp, 'leases'), '');
  server.spawn('busybox', ['udhcpd', '-f', conf], path.join(tmp, 'udhcpd.log'));
  const sys = clientSystem();
  const resolv = path.join(tmp, 'dhcp-resolv.conf');
  const up = await bringUpNetwork(sys, [parseIpArgument('dhcp', src)], { nameservers: [], timeoutMs: 30_000 },
    { resolvConf: resolv, scriptDir: tmp, tools: { ip: ['ip'], udhcpc: ['busybox', 'udhcpc'] } });
  assert.equal(up.length, 1);
  assert.equal(up[0]!.name, cif);
  assert.match(up[0]!.address, /^10\.78\.0\.(1\d|20)$/);
  assert.deepEqual([up[0]!.prefix, up[0]!.gateway, up[0]!.source], [24, '10.78.0.1', 'dhcp']);
  assert.match(client.ip('-4', 'addr', 'show', 'dev', cif), new RegExp(`inet ${up[0]!.address.replace(/\./g, '\\.')}/24`));
  client.exec('busybox', ['ping', '-c', '1', '-W', '5', '10.78.0.1']);
  assert.equal(fs.readFileSync(resolv, 'utf8'), 'nameserver 10.78.0.53\n');
});

test("busybox's own ip (the capture initramfs has no iproute2) brings up a static address too", async () => {
  reset();
  client.ip('route', 'flush', 'table', 'main');
  server.ip('addr', 'add', '10.76.0.1/24', 'dev', sif);
  const sys = clientSystem();
  const spec = parseIpArgument(`10.76.0.2::10.76.0.1:24::${cif}:off:1400`, src);
  const up = await bringUpNetwork(sys, [spec], { nameservers: [], timeoutMs: 20_000 }, { tools: { ip: ['busybox', 'ip'], udhcpc: ['busybox', 'udhcpc'] } });
  assert.deepEqual(up.map((u) => [u.address, u.prefix, u.gateway]), [['10.76.0.2', 24, '10.76.0.1']]);
  assert.match(client.ip('link', 'show', 'dev', cif), /mtu 1400 /);
  assert.match(client.ip('route', 'show', 'default'), /default via 10\.76\.0\.1 /);
  client.exec('busybox', ['ping', '-c', '1', '-W', '5', '10.76.0.1']);
  client.ip('link', 'set', 'dev', cif, 'mtu', '1500');
});

test('a named interface that does not exist fails with a clear message', async () => {
  const sys = clientSystem();
  await assert.rejects(
    bringUpNetwork(sys, [parseIpArgument('10.79.0.2:::24::nosuch0:none', src)], { nameservers: [], timeoutMs: 1000 }, { tools: { ip: ['ip'], udhcpc: ['busybox', 'udhcpc'] } }),
    (e: unknown) => e instanceof LastwordError && /nosuch0/.test(e.message),
  );
});

test('lease and link parsing', () => {
  assert.deepEqual(parseLease('lastword-lease ip=10.0.0.5\nlastword-lease subnet=255.255.0.0\nlastword-lease router=10.0.0.1 10.0.0.2\nlastword-lease dns=1.1.1.1 8.8.8.8\nlastword-lease mtu=\nlastword-lease hostname=\n'),
    { ip: '10.0.0.5', subnet: '255.255.0.0', router: '10.0.0.1', dns: ['1.1.1.1', '8.8.8.8'], mtu: undefined, hostname: undefined });
  assert.equal(parseLease('udhcpc: no lease\n'), undefined);
  assert.deepEqual(parseLinks('1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n7: veth0@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\\    link/ether 8a:1b:2c:3d:4e:5f brd ff:ff:ff:ff:ff:ff link-netns x\n'),
    [{ name: 'veth0', mac: '8a:1b:2c:3d:4e:5f', lowerUp: true }]);
});
