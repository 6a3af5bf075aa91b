// The capture's network taken from the build host, for real, in network namespaces this test
// creates: a "build host" namespace whose eth0 has a static address and a default route (then a
// DHCP-style lease, then a bridge), read with iproute2's `ip -j` as `lastword initramfs` reads it;
// the words go through the image file into a Plan as the capture loads it, and a "capture"
// namespace, whose NICs are eth0/eth1 in another order, gets the interface with the build host's
// MAC renamed and configured by bringUpNetwork, and reaches the gateway.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { HOST_NETWORK_FILE, loadPlan, type ConfigReader } from '../../runtime/config/load.ts';
import { LastwordError } from '../../runtime/errors.ts';
import { bringUpNetwork, effectiveIpSpecs } from '../../runtime/network/bringup.ts';
import { captureInterfaceName, deriveHostNetwork, ipProbe, networkDestinations, parseNameservers } from '../../runtime/network/host-config.ts';
import { Netns, netnsSystem } from '../support/netns.ts';

const MAC = '52:54:00:4c:57:01';
let build: Netns;
let capture: Netns;
let gateway: Netns;

before(() => {
  build = Netns.create('lw-hc-b');
  capture = Netns.create('lw-hc-c');
  gateway = Netns.create('lw-hc-g');
  // build host: eth0 (the dump NIC, MAC) and its peer, both inside the namespace
  build.ip('link', 'add', 'eth0', 'address', MAC, 'type', 'veth', 'peer', 'name', 'bpeer');
  build.ip('link', 'set', 'eth0', 'up');
  build.ip('link', 'set', 'bpeer', 'up');
  // capture: eth0 is some other NIC, eth1 carries the build host's MAC; both lead to the gateway
  execFileSync('ip', ['link', 'add', 'eth0', 'netns', capture.name, 'type', 'veth', 'peer', 'name', 'g0', 'netns', gateway.name]);
  execFileSync('ip', ['link', 'add', 'eth1', 'netns', capture.name, 'address', MAC, 'type', 'veth', 'peer', 'name', 'g1', 'netns', gateway.name]);
  gateway.ip('addr', 'add', '10.81.0.1/24', 'dev', 'g1');
  gateway.ip('link', 'set', 'g0', 'up');
  gateway.ip('link', 'set', 'g1', 'up');
});

after(() => {
  build?.destroy();
  capture?.destroy();
  gateway?.destroy();
});

const buildProbe = (resolv?: string) => ipProbe(['ip', '-n', build.name], (file) => (file === '/etc/resolv.conf' ? resolv : undefined));

function sshPlan(host: string, fence = '') {
  const conf = `ssh root@${host}\nsshkey /root/.ssh/kdump_id_rsa\n${fence}`;
  return loadPlan({ config: '/etc/kdump.conf', cmdline: '', reader: reader({ '/etc/kdump.conf': conf }) });
}

function reader(files: Record<string, string>): ConfigReader {
  return { readFile: (f) => files[f], listDir: () => undefined };
}

test('a static address: ifname= by MAC, the same address and the gateway of the route', async () => {
  build.ip('addr', 'flush', 'dev', 'eth0');
  build.ip('addr', 'add', '10.81.0.2/24', 'dev', 'eth0');
  build.ip('route', 'replace', 'default', 'via', '10.81.0.1', 'dev', 'eth0');
  const net = await deriveHostNetwork(sshPlan('10.99.7.7', 'fence_kdump_nodes 10.81.0.9\n'), buildProbe('nameserver 10.81.0.53\n'));
  assert.deepEqual(net.words, [`ifname=kdump-eth0:${MAC}`, 'ip=10.81.0.2::10.81.0.1:24::kdump-eth0:none', 'kdump_remote_ip=10.99.7.7']);
  assert.match(net.notes.join('\n'), /10\.81\.0\.9 \(10\.81\.0\.9\): via eth0 as well/);

  // The capture loads those words from its image; its NICs are named in another order.
  const file = `# from the builder\n${net.words.join('\n')}\n`;
  const plan = loadPlan({ config: '/etc/kdump.conf', cmdline: 'irqpoll reset_devices', reader: reader({ '/etc/kdump.conf': 'ssh root@10.99.7.7\n', [HOST_NETWORK_FILE]: file }) });
  assert.deepEqual(plan.network.ifnames.map((i) => [i.name, i.mac]), [['kdump-eth0', MAC]]);
  assert.equal(plan.network.remoteIp, '10.99.7.7');
  const sys = netnsSystem(capture);
  const up = await bringUpNetwork(sys, effectiveIpSpecs(plan), plan.network, { tools: { ip: ['busybox', 'ip'], udhcpc: ['busybox', 'udhcpc'] } });
  assert.deepEqual(up.map((u) => [u.name, u.address, u.prefix, u.gateway]), [['kdump-eth0', '10.81.0.2', 24, '10.81.0.1']]);
  assert.match(capture.ip('link', 'show', 'dev', 'kdump-eth0'), new RegExp(MAC));
  assert.match(capture.ip('route', 'show', 'default'), /default via 10\.81\.0\.1 dev kdump-eth0/);
  capture.exec('busybox', ['ping', '-c', '1', '-W', '5', '10.81.0.1']); // throws when the gateway does not answer
  assert.match(sys.logs.join('\n'), /eth1 \(52:54:00:4c:57:01\) is now kdump-eth0/);

  // An ip= on the capture command line replaces the builder's network entirely.
  const own = loadPlan({ config: '/etc/kdump.conf', cmdline: 'ip=dhcp', reader: reader({ '/etc/kdump.conf': 'ssh root@10.99.7.7\n', [HOST_NETWORK_FILE]: file }) });
  assert.deepEqual([own.network.ifnames, own.network.ip.map((i) => i.autoconf), own.network.remoteIp], [[], ['dhcp'], undefined]);
});

test('an address with a lifetime (a DHCP lease) becomes ip=<if>:dhcp, and a named host brings the DNS servers', async () => {
  build.ip('addr', 'flush', 'dev', 'eth0');
  build.ip('addr', 'add', '10.81.0.3/24', 'dev', 'eth0', 'valid_lft', '600', 'preferred_lft', '600');
  build.ip('link', 'set', 'eth0', 'mtu', '9000');
  build.ip('route', 'replace', 'default', 'via', '10.81.0.1', 'dev', 'eth0');
  try {
    const probe = { ...buildProbe('nameserver 127.0.0.53\n'), resolve: async (h: string) => (h === 'dumps.example' ? '10.99.7.8' : assert.fail(h)) };
    const net = await deriveHostNetwork(sshPlan('dumps.example'), { ...probe, resolvConf: () => 'search x\nnameserver 127.0.0.53\nnameserver 10.81.0.53\n' });
    assert.deepEqual(net.words, [`ifname=kdump-eth0:${MAC}`, 'ip=kdump-eth0:dhcp:9000', 'kdump_remote_ip=10.99.7.8', 'nameserver=10.81.0.53']);
  } finally {
    build.ip('link', 'set', 'eth0', 'mtu', '1500');
  }
});

test('a bridge, or no route at all, is refused with the host and interface named', async () => {
  build.ip('link', 'add', 'br0', 'type', 'bridge');
  build.ip('addr', 'add', '10.82.0.2/24', 'dev', 'br0');
  build.ip('link', 'set', 'br0', 'up');
  await assert.rejects(deriveHostNetwork(sshPlan('10.82.0.9'), buildProbe()),
    (e: unknown) => e instanceof LastwordError && e.code === 'ENET_HOST_CONFIG' && /10\.82\.0\.9 .*br0, a bridge/.test(e.message));
  build.ip('route', 'flush', 'table', 'main');
  build.ip('addr', 'flush', 'dev', 'eth0');
  await assert.rejects(deriveHostNetwork(sshPlan('10.99.7.7'), buildProbe()),
    (e: unknown) => e instanceof LastwordError && e.code === 'ENET_HOST_CONFIG' && /10\.99\.7\.7/.test(e.message));
});

test('ifname= for a MAC no NIC has fails naming the MAC and the interfaces there are', async () => {
  const plan = loadPlan({ config: '/etc/kdump.conf', cmdline: 'ifname=ens9:52:54:00:ff:ff:ff ip=ens9:dhcp', reader: reader({ '/etc/kdump.conf': 'ssh root@10.99.7.7\n' }) });
  await assert.rejects(bringUpNetwork(netnsSystem(capture), effectiveIpSpecs(plan), { ...plan.network, timeoutMs: 500 }, { tools: { ip: ['ip'], udhcpc: ['busybox', 'udhcpc'] } }),
    (e: unknown) => e instanceof LastwordError && e.code === 'ENET_NO_INTERFACE' && /52:54:00:ff:ff:ff/.test(e.message) && /kdump-eth0 52:54:00:4c:57:01/.test(e.message));
});

test('destinations, capture names, nameservers and ifname= syntax', () => {
  assert.deepEqual(networkDestinations(sshPlan('[fd00::5]', 'fence_kdump_nodes node2 node3\n')), ['fd00::5', 'node2', 'node3']);
  assert.equal(captureInterfaceName('eth0'), 'kdump-eth0');
  assert.equal(captureInterfaceName('enp1s0'), 'enp1s0');
  assert.throws(() => captureInterfaceName('eth1234567890'), /no valid capture-kernel name/);
  assert.deepEqual(parseNameservers('nameserver 127.0.0.53\nnameserver ::1\n# nameserver 1.1.1.1\nnameserver fd00::53\nnameserver 10.0.0.53 # x\n'), ['fd00::53', '10.0.0.53']);
  assert.throws(() => loadPlan({ config: '/c', cmdline: 'ifname=ens9', reader: reader({ '/c': 'nfs s:/x\n' }) }), /ifname=ens9: '' is not a MAC address/);
  assert.throws(() => loadPlan({ config: '/c', cmdline: 'ifname=averyveryverylongname:52:54:00:00:00:01', reader: reader({ '/c': 'nfs s:/x\n' }) }), /not an interface name/);
});
