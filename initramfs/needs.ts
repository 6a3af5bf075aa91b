// What the configured dump target needs in the capture kernel, as module requests: the filesystem,
// the storage or network drivers, what the image layout itself needs to mount its read-only image,
// and kdump.conf extra_modules. Pure: the host's device modaliases come in as an argument
// (initramfs/host-devices.ts reads them), so the capture kernel, booting on the same machine,
// finds drivers for the devices this machine really has — what dracut's hostonly mode does.
import { needsNetwork, planTargets, type Plan } from '../runtime/config/plan.ts';
import type { ModuleRequest } from './modules.ts';

export type ImageLayout = 'plain' | 'squashfs' | 'erofs';

/** Drivers of the usual virtual and physical disks, for when the host's own cannot be read (a chroot, a VM image). */
const COMMON_BLOCK = ['virtio_pci', 'virtio_blk', 'virtio_scsi', 'sd_mod', 'ahci', 'ata_piix', 'nvme'];
const COMMON_NET = ['virtio_pci', 'virtio_net', 'e1000', 'e1000e'];

export interface HostModaliases {
  block: string[];
  net: string[];
}

/** The modules /init needs to mount the read-only image of a layout. */
export function layoutModules(layout: ImageLayout): string[] {
  return layout === 'plain' ? [] : ['loop', layout];
}

/**
 * With the image on a disk (`--image-on`, image-disk.ts), what /init loads to mount that disk
 * before anything else runs: its filesystem and the drivers of that disk (the modaliases above it),
 * or the usual storage drivers when it has none here (a loop device standing in for a disk).
 */
export function imageDiskModules(disk: { fstype: string; modaliases: readonly string[] }): string[] {
  return [disk.fstype, ...(disk.modaliases.length ? disk.modaliases : COMMON_BLOCK)];
}

export function moduleRequests(plan: Plan, layout: ImageLayout, host: HostModaliases, imageDisk?: { fstype: string; modaliases: readonly string[] }): ModuleRequest[] {
  const out: ModuleRequest[] = [];
  const want = (name: string, reason: string, required = false) => out.push({ name, reason, required });
  const block = () => {
    for (const m of COMMON_BLOCK) want(m, 'common storage driver');
    for (const a of host.block) want(a, 'a disk of this machine');
  };
  const net = () => {
    for (const m of COMMON_NET) want(m, 'common network driver');
    for (const a of host.net) want(a, 'a network card of this machine');
    // udhcpc (ip=dhcp) needs AF_PACKET; a module on some kernels.
    want('af_packet', 'ip=dhcp');
  };
  const targets = planTargets(plan);
  if (targets.some((t) => t.kind === 'local-fs' || t.kind === 'root' || t.kind === 'raw')) block();
  if (needsNetwork(plan)) net();   // a network target, or fence_kdump_nodes: the cluster's network
  for (const t of targets) {
    if (t.kind === 'local-fs') {
      want(`fs-${t.fstype}`, `target ${t.fstype}`);
      want(t.fstype, `target ${t.fstype}`);
    } else if (t.kind === 'root') {
      // The root filesystem's type is only known on the running system; ship the usual ones.
      for (const fs of ['ext4', 'xfs', 'btrfs']) want(fs, 'root filesystem (no target configured)');
    } else if (t.kind === 'nfs') {
      for (const m of ['nfs', 'nfsv3', 'nfsv4']) want(m, `target nfs ${t.server}:${t.export}`);
    }
  }
  for (const m of layoutModules(layout)) want(m, `layout ${layout}`);
  if (imageDisk) for (const m of imageDiskModules(imageDisk)) want(m, 'the disk holding the image (--image-on)', m === imageDisk.fstype);
  for (const m of plan.modules.extra) want(m, 'extra_modules', true);
  return out;
}
