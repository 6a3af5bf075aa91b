// The filter stage: makedumpfile's dump levels over a vmcore's mem_map, as a cyclic 2nd bitmap.
export { createPageFilter } from './page-filter.ts';
export type { PageFilterOptions } from './page-filter.ts';
export { findMemMap } from './mem-map.ts';
export type { MemMapLayout, MemMapSection } from './mem-map.ts';
export { classifyPage, pageRules, DL_EXCLUDE_ZERO, DL_EXCLUDE_CACHE, DL_EXCLUDE_CACHE_PRI, DL_EXCLUDE_USER_DATA, DL_EXCLUDE_FREE } from './page-rules.ts';
export type { PageClass, PageDecision, PageRules } from './page-rules.ts';
export type { PageClassCounts, PageFilter } from './types.ts';
