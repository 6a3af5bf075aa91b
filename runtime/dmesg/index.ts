// The dmesg stage: the crashed kernel's log, as makedumpfile --dump-dmesg writes it.
export { extractDmesg, printkRecords } from './printk.ts';
export type { DmesgOptions, PrintkRecord } from './printk.ts';
export { formatRecord } from './format.ts';
export type { RecordFormat } from './format.ts';
