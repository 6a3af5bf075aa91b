// A synthetic vmcore of a 3.5..5.9 kernel: the variable-length log_buf (struct printk_log records,
// wrap marker) filled with given records, with the VMCOREINFO keys such kernels export.
import { writeSyntheticVmcore } from '../../initramfs/executable/synthetic-vmcore.ts';
import type { PrintkRecord } from '../../runtime/dmesg/index.ts';

const PAGE_OFFSET = 0xffff888000000000n;
const START_KERNEL_MAP = 0xffffffff80000000n;
// struct printk_log (kernel/printk/printk.c, 5.1+ with CONFIG_PRINTK_CALLER): u64 ts_nsec; u16 len,
// text_len, dict_len; u8 facility; u8 flags:5, level:3; u32 caller_id. Aligned to 8.
const SIZE_LOG = 24;
const LOG_BUF = 0x10000;       // physical address of the buffer
const VARS = 0x2000;           // log_buf, log_buf_len, log_first_idx, log_next_idx, init_uts_ns
const RELEASE = '5.4.0-synthetic';

function recordBytes(r: PrintkRecord): Buffer {
  const len = (SIZE_LOG + r.text.length + 7) & ~7;
  const b = Buffer.alloc(len);
  b.writeBigUInt64LE(r.tsNsec, 0);
  b.writeUInt16LE(len, 8);
  b.writeUInt16LE(r.text.length, 10);
  b.writeUInt8(6 << 5, 15);
  b.writeUInt32LE(r.callerId ?? 0, 16);
  r.text.copy(b, SIZE_LOG);
  return b;
}

/**
 * Lays the records out as a wrapped ring: the oldest start `wrapAt` bytes before the end of a
 * `bufLen` buffer, a zero-length record marks the wrap, the rest continue at offset 0.
 */
export function writeLegacyVmcore(file: string, records: PrintkRecord[], bufLen = 1 << 16): void {
  const buf = Buffer.alloc(bufLen);
  const all = records.map(recordBytes);
  const total = all.reduce((n, b) => n + b.length, 0);
  if (total + 4096 > bufLen) throw new Error('records do not fit');
  let first = bufLen - 2048;
  let p = first;
  let wrapped = false;
  for (const b of all) {
    if (!wrapped && p + b.length > bufLen - SIZE_LOG) {
      buf.fill(0, p, p + SIZE_LOG);            // len 0: wrap marker
      p = 0;
      wrapped = true;
    }
    b.copy(buf, p);
    p += b.length;
  }
  if (!wrapped) first = 0;
  const mem = Buffer.alloc(LOG_BUF + bufLen);
  buf.copy(mem, LOG_BUF);
  mem.writeBigUInt64LE(PAGE_OFFSET + BigInt(LOG_BUF), VARS);
  mem.writeUInt32LE(bufLen, VARS + 8);
  mem.writeUInt32LE(first, VARS + 16);
  mem.writeUInt32LE(p, VARS + 24);
  // Page tables (makedumpfile walks them even for direct-map addresses): pgd at pfn 1, 1 GiB leaves
  // at physical 0 for the direct map (pud at pfn 4) and the kernel image (pud at pfn 5).
  mem.writeBigUInt64LE(0x4000n | 0x63n, 0x1000 + 8 * Number((PAGE_OFFSET >> 39n) & 511n));
  mem.writeBigUInt64LE(0xe3n, 0x4000 + 8 * Number((PAGE_OFFSET >> 30n) & 511n));
  mem.writeBigUInt64LE(0x5000n | 0x63n, 0x1000 + 8 * 511);
  mem.writeBigUInt64LE(0xe3n, 0x5000 + 8 * 510);
  // makedumpfile reads the memory model even for --dump-dmesg: one SPARSEMEM_EXTREME section
  // (root array at pfn 6, mem_section[0] at pfn 7, struct pages at pfn 8).
  mem.writeBigUInt64LE(PAGE_OFFSET + 0x7000n, 0x6000);
  mem.writeBigUInt64LE((PAGE_OFFSET + 0x8000n) | 1n, 0x7000);
  // init_uts_ns.name (struct new_utsname: 6 x char[65]); makedumpfile checks the release.
  const uts = VARS + 0x100;
  ['Linux', '(none)', RELEASE, '#1 SMP', 'x86_64', '(none)'].forEach((f, i) => mem.write(f, uts + 65 * i, 'latin1'));
  // Direct-map addresses: makedumpfile walks the page tables for kernel-image ones.
  const sym = (off: number) => (PAGE_OFFSET + BigInt(VARS + off)).toString(16);
  writeSyntheticVmcore(file, [
    `OSRELEASE=${RELEASE}`, 'PAGESIZE=4096', `SYMBOL(init_uts_ns)=${sym(0x100)}`, 'OFFSET(uts_namespace.name)=0',
    `SYMBOL(log_buf)=${sym(0)}`, `SYMBOL(log_buf_len)=${sym(8)}`, `SYMBOL(log_first_idx)=${sym(16)}`,
    `SYMBOL(log_next_idx)=${sym(24)}`, `SYMBOL(clear_idx)=${sym(16)}`,
    `SIZE(printk_log)=${SIZE_LOG}`, 'OFFSET(printk_log.ts_nsec)=0', 'OFFSET(printk_log.len)=8',
    'OFFSET(printk_log.text_len)=10', 'OFFSET(printk_log.dict_len)=12', 'OFFSET(printk_log.caller_id)=16',
    'NUMBER(phys_base)=0', `SYMBOL(init_top_pgt)=${(START_KERNEL_MAP + 0x1000n).toString(16)}`, 'NUMBER(pgtable_l5_enabled)=0',
    `SYMBOL(mem_section)=${(PAGE_OFFSET + 0x6000n).toString(16)}`, 'LENGTH(mem_section)=2048', 'SIZE(mem_section)=16',
    'OFFSET(mem_section.section_mem_map)=0', 'NUMBER(SECTION_SIZE_BITS)=27', 'NUMBER(MAX_PHYSMEM_BITS)=46',
    'SIZE(page)=64', 'OFFSET(page.flags)=0', 'OFFSET(page._refcount)=52', 'OFFSET(page.mapping)=24',
    'CRASHTIME=1700000000', '',
  ].join('\n'), [{ paddr: 0, vaddr: PAGE_OFFSET, data: mem }]);
}
