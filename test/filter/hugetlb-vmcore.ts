// A real kdump vmcore of a guest booted with `hugepages=8` (16 MiB hugetlb pool), so the hugetlb
// rules run on real struct pages: compound_dtor on 6.1, the hugetlb page type on 6.12.
import { variantVmcore } from '../vmcore/variant-vmcore.ts';

export function hugetlbVmcore(series: string): string {
  return variantVmcore(series, 'hugetlb', 'hugepages=8');
}
