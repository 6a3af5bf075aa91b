// The Plan with nothing configured: what kdump-utils and kdump-tools do when their config files
// are empty, so a missing file means the distribution's behaviour, not ours.
import { parseMakedumpfileArgs } from './collector.ts';
import { splitShellWords } from './shell.ts';
import {
  DEBIAN_DEFAULT_MAKEDUMP_ARGS, DEFAULT_DISK_TIMEOUT_MS, DEFAULT_NET_TIMEOUT_MS, DEFAULT_PATH, DEFAULT_STALL_TIMEOUT_MS, FEDORA_DEFAULT_COLLECTOR,
  type Layout, type Plan,
} from './plan.ts';

// kdump-utils gen-kdump-sysconfig.sh (x86_64) and kdump-tools' documented KDUMP_CMDLINE_APPEND,
// without systemd.unit=kdump-tools-dump.service: lastword is the capture's init, not a unit.
const FEDORA_APPEND = 'irqpoll nr_cpus=1 reset_devices cgroup_disable=memory mce=off numa=off udev.children-max=2 panic=10 acpi_no_memhotplug transparent_hugepage=never nokaslr hest_disable novmcoredd cma=0 hugetlb_cma=0 pcie_ports=compat';
const FEDORA_REMOVE = 'hugepages hugepagesz slub_debug quiet log_buf_len swiotlb cma hugetlb_cma ignition.firstboot';
const DEBIAN_APPEND = 'reset_devices nr_cpus=1 irqpoll usbcore.nousb';

export function defaultPlan(layout: Layout): Plan {
  const builtin = { file: '<default>' };
  const collector = layout === 'fedora'
    ? parseMakedumpfileArgs(splitShellWords(FEDORA_DEFAULT_COLLECTOR).slice(1), builtin).collector
    : parseMakedumpfileArgs(splitShellWords(DEBIAN_DEFAULT_MAKEDUMP_ARGS), builtin).collector;
  return {
    sources: [],
    layout,
    enabled: true,
    target: { kind: 'root', source: builtin },
    alsoTargets: [],
    path: DEFAULT_PATH,
    naming: { layout, hostTag: 'ip' },
    collector,
    dmesg: true,
    numDumps: 0,
    stallTimeoutMs: DEFAULT_STALL_TIMEOUT_MS,
    hooks: { pre: [], post: [], emergency: [] },
    finalAction: 'reboot',
    failureAction: 'reboot',
    modules: { extra: [], blacklist: [], resetDevices: false, diskTimeoutMs: DEFAULT_DISK_TIMEOUT_MS },
    network: { ip: [], ifnames: [], nameservers: [], timeoutMs: DEFAULT_NET_TIMEOUT_MS },
    kexec: layout === 'fedora'
      ? { commandlineAppend: FEDORA_APPEND.split(' '), commandlineRemove: FEDORA_REMOVE.split(' '), kexecArgs: ['-s'] }
      : { kernel: '/var/lib/kdump/vmlinuz', initrd: '/var/lib/kdump/initrd.img', commandlineAppend: DEBIAN_APPEND.split(' '), commandlineRemove: [], kexecArgs: [] },
    image: { extraBins: [], dracutArgs: [], forceRebuild: false, forceNoRebuild: false },
    warnings: [],
  };
}
