// The mem_map walk's inner loop in C++: classifyPage (runtime/filter/page-rules.ts) over a block of
// struct pages, with makedumpfile's skip over each excluded range. The TypeScript loop cost ~0.2-0.3 s
// of CPU per 1 Mi pfns (4 GiB), as much as makedumpfile's whole run; this is the same rules line by
// line, and test/filter/native-walk.test.ts checks that both give the same bitmaps on real vmcores.
// Rules come in as numbers decided in TypeScript (pageRules()), so nothing here knows a kernel.
#include <napi.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include "vmcore-window.h"

namespace {

// Indices of the rules array, in the order of runtime/filter/native-walk.ts RULE_FIELDS.
enum Rule {
  kSizePage, kOffFlags, kOffMapping, kOffMapcount, kOffPrivate, kOffCompoundHead, kOrderOffset, kDtorOffset,
  kKernelVersion, kPgLru, kPgPrivate, kPgSwapcache, kPgSwapbacked, kPgSlab, kPgHwpoison, kPgHugetlb,
  kHeadMaskLo, kHeadMaskHi, kBuddy, kPgBuddy, kBuddyValue, kOfflineValue, kSlabValue, kHugetlbValue,
  kUnacceptedValue, kFreeAreaLength, kDumpLevel, kRuleCount
};
constexpr double kNone = -1;  // an optional field that is absent (offsets, page-type values)
// makedumpfile's NOT_FOUND_NUMBER for flag numbers
constexpr int kNotFound = -1;
constexpr int kKernel4_4 = (4 << 16) + (4 << 8), kKernel4_16 = (4 << 16) + (16 << 8);
// page-rules.ts DL_EXCLUDE_*
constexpr int kCache = 2, kCachePri = 4, kUser = 8, kFree = 16;
// Class codes: indices of the counts array, native-walk.ts CLASS_BY_CODE.
enum Cls { kClsFree, kClsCache, kClsCachePrivate, kClsUser, kClsHwpoison, kClsOffline };

struct Rules {
  int sizePage, offFlags, offMapping, offMapcount, offPrivate, offCompoundHead, orderOffset, dtorOffset;
  int kernelVersion, pgLru, pgPrivate, pgSwapcache, pgSwapbacked, pgSlab, pgHwpoison, pgHugetlb;
  uint32_t headMaskLo, headMaskHi;
  int buddy;  // 0 none, 1 mapcount, 2 flag
  int pgBuddy;
  uint32_t buddyValue;
  bool hasOffline, hasSlab, hasHugetlb, hasUnaccepted, hasFreeArea;
  uint32_t offlineValue, slabValue, hugetlbValue, unacceptedValue;
  double freeAreaLength;
  int dumpLevel;
  bool hasHugetlbDtor, hasFreeHugePage;
  uint64_t hugetlbDtor, freeHugePage;
};

inline uint32_t u32(const unsigned char* p) { uint32_t v; memcpy(&v, p, 4); return v; }
inline uint64_t u64(const unsigned char* p) { uint64_t v; memcpy(&v, p, 8); return v; }
inline uint16_t u16(const unsigned char* p) { uint16_t v; memcpy(&v, p, 2); return v; }

// makedumpfile's test_bit(): int mask 1 << (nr & 31); bit 31 sign-extends over the high word.
inline bool testBit(int nr, uint32_t lo, uint32_t hi) {
  int n = nr & 31;
  if (n == 31) return (lo >> 31) != 0 || hi != 0;
  return ((lo >> n) & 1) != 0;
}
// `flags & (1UL << nr)` where nr may be -1: x86 shifts by nr & 63.
inline bool testBit64(int nr, uint32_t lo, uint32_t hi) {
  int n = nr & 63;
  return n < 32 ? ((lo >> n) & 1) != 0 : ((hi >> (n - 32)) & 1) != 0;
}

// A pfn with no fraction (every real one, below 2^53).
inline bool isWhole(double pfn) { return pfn >= 0 && pfn < 9007199254740992.0 && static_cast<double>(static_cast<uint64_t>(pfn)) == pfn; }

// classifyPage(): -1 kept, -2 compound tail, else a class code with *nrPages set. *order: the
// compound order of a head (0 for any other page).
int classify(const Rules& r, const unsigned char* pages, size_t at, long long nextAt, double pfn, double* nrPages, unsigned* orderOut) {
  const unsigned char* p = pages + at;
  uint32_t flagsLo = u32(p + r.offFlags), flagsHi = u32(p + r.offFlags + 4);
  uint32_t mappingLo = u32(p + r.offMapping);
  uint32_t mapcount = r.offMapcount >= 0 ? u32(p + r.offMapcount) : 0;
  unsigned order = 0;
  uint64_t dtor = 0;
  bool dtorIsHugetlb = false;
  if (nextAt >= 0 && ((flagsLo & r.headMaskLo) != 0 || (flagsHi & r.headMaskHi) != 0)) {
    const unsigned char* n = pages + nextAt;
    if (r.hasHugetlb) {
      order = n[r.offFlags];
      dtorIsHugetlb = mapcount == r.hugetlbValue;
    } else if (r.pgHugetlb != kNotFound) {
      uint32_t f1Lo = u32(n + r.offFlags), f1Hi = u32(n + r.offFlags + 4);
      order = f1Lo & 0xff;
      dtorIsHugetlb = testBit64(r.pgHugetlb, f1Lo, f1Hi);
    } else {
      bool wide = r.kernelVersion >= kKernel4_16;
      if (r.orderOffset) order = wide ? n[r.orderOffset] : u16(n + r.orderOffset);
      if (r.dtorOffset) {
        if (wide) dtor = n[r.dtorOffset];
        else if (r.kernelVersion >= kKernel4_4) dtor = u16(n + r.dtorOffset);
        else dtor = u64(n + r.dtorOffset);
      }
    }
    // check_order: an order that is too big or a misaligned head means order 0. Integer arithmetic
    // here and below where fmod/ldexp were: under QEMU's TCG (a capture kernel without KVM) glibc's
    // fmod and ldexp run through emulated x87/SSE code; the 1 GiB lab vmcore's walk under
    // qemu-x86_64 took 71-74 ms with them, 55 ms without.
    if (order >= 64 || !isWhole(pfn) || (static_cast<uint64_t>(pfn) & ((1ULL << order) - 1)) != 0) order = 0;
  }
  *orderOut = order;
  uint32_t compoundHead = r.offCompoundHead >= 0 ? u32(p + r.offCompoundHead) : 0;
  if (compoundHead & 1) return -2;

  bool isSlab = (r.hasSlab && mapcount == r.slabValue) || testBit64(r.pgSlab, flagsLo, flagsHi);
  bool isAnon = (mappingLo & 1) != 0 && !isSlab;
  bool isPrivate = testBit(r.pgPrivate, flagsLo, flagsHi);
  bool isCache = testBit(r.pgLru, flagsLo, flagsHi)
    || ((r.pgSwapbacked == kNotFound || testBit(r.pgSwapbacked, flagsLo, flagsHi)) && testBit(r.pgSwapcache, flagsLo, flagsHi));
  double nr = static_cast<double>(1ULL << order);
  int level = r.dumpLevel;

  if ((level & kFree) && r.buddy) {
    bool isBuddy = r.buddy == 1 ? !isSlab && mapcount == r.buddyValue : testBit64(r.pgBuddy, flagsLo, flagsHi);
    if (isBuddy) {
      uint64_t priv = u64(p + r.offPrivate);
      // makedumpfile warns and keeps the page when the order is impossible.
      if (r.hasFreeArea && static_cast<double>(priv) >= r.freeAreaLength) return -1;
      *nrPages = priv < 64 ? static_cast<double>(1ULL << priv) : std::pow(2.0, static_cast<double>(priv));
      return kClsFree;
    }
  }
  if ((level & kFree) && r.hasUnaccepted && mapcount == r.unacceptedValue) {
    *nrPages = std::pow(2.0, (r.hasFreeArea ? r.freeAreaLength : 0) - 1);
    return kClsFree;
  }
  *nrPages = nr;
  if ((level & kCache) && isCache && !isPrivate && !isAnon) return kClsCache;
  if ((level & kCachePri) && isCache && !isAnon) return isPrivate ? kClsCachePrivate : kClsCache;
  if (level & kUser) {
    bool isHugetlb = dtorIsHugetlb || (r.hasHugetlbDtor && r.hugetlbDtor == dtor) || (r.hasFreeHugePage && r.freeHugePage == dtor);
    if (isAnon || isHugetlb) return kClsUser;
  }
  if (r.pgHwpoison != kNotFound && testBit(r.pgHwpoison, flagsLo, flagsHi)) return kClsHwpoison;
  if (r.hasOffline && !isSlab && mapcount == r.offlineValue) return kClsOffline;
  return -1;
}

Rules readRules(const Napi::Env& env, Napi::Float64Array a, Napi::BigUint64Array ptrs) {
  if (a.ElementLength() < kRuleCount || ptrs.ElementLength() < 4) throw Napi::RangeError::New(env, "rules array too short");
  auto i = [&](int k) { return static_cast<int>(a[k]); };
  auto opt = [&](int k, bool* has, uint32_t* v) { *has = a[k] != kNone; *v = *has ? static_cast<uint32_t>(a[k]) : 0; };
  Rules r{};
  r.sizePage = i(kSizePage); r.offFlags = i(kOffFlags); r.offMapping = i(kOffMapping);
  r.offMapcount = i(kOffMapcount); r.offPrivate = i(kOffPrivate); r.offCompoundHead = i(kOffCompoundHead);
  r.orderOffset = i(kOrderOffset); r.dtorOffset = i(kDtorOffset); r.kernelVersion = i(kKernelVersion);
  r.pgLru = i(kPgLru); r.pgPrivate = i(kPgPrivate); r.pgSwapcache = i(kPgSwapcache); r.pgSwapbacked = i(kPgSwapbacked);
  r.pgSlab = i(kPgSlab); r.pgHwpoison = i(kPgHwpoison); r.pgHugetlb = i(kPgHugetlb);
  r.headMaskLo = static_cast<uint32_t>(a[kHeadMaskLo]); r.headMaskHi = static_cast<uint32_t>(a[kHeadMaskHi]);
  r.buddy = i(kBuddy); r.pgBuddy = i(kPgBuddy); r.buddyValue = static_cast<uint32_t>(a[kBuddyValue]);
  opt(kOfflineValue, &r.hasOffline, &r.offlineValue);
  opt(kSlabValue, &r.hasSlab, &r.slabValue);
  opt(kHugetlbValue, &r.hasHugetlb, &r.hugetlbValue);
  opt(kUnacceptedValue, &r.hasUnaccepted, &r.unacceptedValue);
  r.hasFreeArea = a[kFreeAreaLength] != kNone; r.freeAreaLength = a[kFreeAreaLength];
  r.dumpLevel = i(kDumpLevel);
  r.hasHugetlbDtor = ptrs[0] != 0; r.hugetlbDtor = ptrs[1];
  r.hasFreeHugePage = ptrs[2] != 0; r.freeHugePage = ptrs[3];
  return r;
}

// kernelPageKind() of page-rules.ts for a page that is not a compound tail: 1 slab, 2 PG_reserved
// (bit pgReserved; -1 = not tested), 0 any other.
int kernelKind(const Rules& r, const unsigned char* p, int pgReserved) {
  uint32_t flagsLo = u32(p + r.offFlags), flagsHi = u32(p + r.offFlags + 4);
  uint32_t mapcount = r.offMapcount >= 0 ? u32(p + r.offMapcount) : 0;
  if ((r.hasSlab && mapcount == r.slabValue) || (r.pgSlab >= 0 && testBit64(r.pgSlab, flagsLo, flagsHi))) return 1;
  if (pgReserved >= 0 && testBit64(pgReserved, flagsLo, flagsHi)) return 2;
  return 0;
}

// Where the walk reports the kept slab and PG_reserved pages (runtime/filter/crash-first.ts):
// state = [pgReserved, slab pfns, reserved entries (2 per run), the last head's kind, the pfn its
// compound ends at]. Slab pages go into `slab` one pfn each, PG_reserved ones into `reserved` as runs.
// A compound tail takes the kind of the head the walk saw last when it lies inside that head's
// compound: heads are aligned and come before their tails, and an excluded head's tails are skipped.
enum KindState { kKsPgReserved, kKsSlab, kKsReserved, kKsHeadKind, kKsHeadEnd, kKsCount };
struct KindSink {
  double* state;
  uint32_t* slab;
  size_t slabCap;
  uint32_t* reserved;
  size_t reservedCap;
  void report(const Rules& r, const unsigned char* p, int cls, double pfn, unsigned order) {
    int kind;
    if (cls == -2) {
      kind = pfn < state[kKsHeadEnd] ? static_cast<int>(state[kKsHeadKind]) : 0;
    } else {
      kind = kernelKind(r, p, static_cast<int>(state[kKsPgReserved]));
      if (order > 0) { state[kKsHeadKind] = kind; state[kKsHeadEnd] = pfn + static_cast<double>(1ULL << order); }
    }
    if (pfn > 0xffffffff) return;  // pfns past 16 TiB stay in pfn order
    if (kind == 1 && state[kKsSlab] < slabCap) slab[static_cast<size_t>(state[kKsSlab]++)] = static_cast<uint32_t>(pfn);
    if (kind != 2) return;
    // PG_reserved pages come in long runs (the mem_map, the swiotlb buffer, boot-time hash tables):
    // [first, end) pairs, the last one grown while the pfns follow on.
    size_t n = static_cast<size_t>(state[kKsReserved]);
    if (n >= 2 && reserved[n - 1] == pfn && pfn < 0xffffffff) reserved[n - 1] = static_cast<uint32_t>(pfn + 1);
    else if (n + 2 <= reservedCap && pfn < 0xffffffff) {
      reserved[n] = static_cast<uint32_t>(pfn);
      reserved[n + 1] = static_cast<uint32_t>(pfn + 1);
      state[kKsReserved] = static_cast<double>(n + 2);
    }
  }
};

inline void clearBits(unsigned char* bm, size_t from, size_t to) {
  size_t i = from;
  for (; i < to && (i & 7); i++) bm[i >> 3] &= ~(1u << (i & 7));
  if (to - i >= 8) { size_t full = (to - i) >> 3; memset(bm + (i >> 3), 0, full); i += full * 8; }
  for (; i < to; i++) bm[i >> 3] &= ~(1u << (i & 7));
}

// Where a walk may clear bits: the cycle [cycleStart, cycleEnd) (bit i = pfn cycleStart + i), and
// of it only up to clearEnd (a thread's share of the cycle ends there; see WalkCycle).
struct Bounds { double cycleStart, clearEnd, cycleEnd; };
// A range that runs past a thread's share: what of it is left to clear inside the cycle.
struct Overhang { double from, to; int cls; };

// The loop of walkStructPages: classifies pfn .. stop-1 of the struct pages in `pages` (pfn blockStart
// at offset 0, blockPages of them), clears each excluded range (see Bounds), adds it to counts[class]
// and skips over it. *beyond: the largest end of a range past cycleEnd. `over`: ranges past clearEnd
// (inside the cycle). Returns the pfn to continue at.
double walkBlock(const Rules& r, const unsigned char* pages, double blockStart, double pfn, double stop, double lastNext,
                 double blockPages, unsigned char* bitmap, const Bounds& b, double* counts, KindSink* sink, double* beyond,
                 std::vector<Overhang>* over) {
  const size_t size = static_cast<size_t>(r.sizePage);
  while (pfn < stop) {
    size_t at = static_cast<size_t>(pfn - blockStart) * size;
    bool hasNext = static_cast<uint64_t>(pfn) % 512 != 511 && pfn + 1 < lastNext && pfn + 1 < blockStart + blockPages;
    double nr = 0;
    unsigned order = 0;
    int cls = classify(r, pages, at, hasNext ? static_cast<long long>(at + size) : -1, pfn, &nr, &order);
    if (cls < 0) {
      if (sink) sink->report(r, pages + at, cls, pfn, order);
      pfn += 1;
      continue;
    }
    double rangeEnd = pfn + nr;
    double lo = pfn > b.cycleStart ? pfn : b.cycleStart;
    double hi = rangeEnd < b.clearEnd ? rangeEnd : b.clearEnd;
    if (hi > lo) {
      clearBits(bitmap, static_cast<size_t>(lo - b.cycleStart), static_cast<size_t>(hi - b.cycleStart));
      counts[cls] += hi - lo;
    }
    if (over && rangeEnd > b.clearEnd && b.clearEnd < b.cycleEnd) {
      over->push_back(Overhang{std::max(lo, b.clearEnd), std::min(rangeEnd, b.cycleEnd), cls});
    }
    if (rangeEnd > b.cycleEnd && rangeEnd > *beyond) *beyond = rangeEnd;
    pfn = rangeEnd;
  }
  return pfn;
}

// The optional (kinds state, slab, reserved) arguments from position `at` on into *sink; false when absent.
bool readKindSink(const Napi::CallbackInfo& info, size_t at, const char* fn, KindSink* sink) {
  if (info.Length() <= at + 2 || !info[at].IsTypedArray()) return false;
  auto state = info[at].As<Napi::Float64Array>();
  auto slab = info[at + 1].As<Napi::Uint32Array>();
  auto reserved = info[at + 2].As<Napi::Uint32Array>();
  if (state.ElementLength() < kKsCount) throw Napi::RangeError::New(info.Env(), std::string(fn) + ": kinds state too short");
  *sink = KindSink{state.Data(), slab.Data(), slab.ElementLength(), reserved.Data(), reserved.ElementLength()};
  return true;
}

// walkStructPages(rules, ptrs, pages, blockStart, pfn, stop, lastNext, bitmap, cycleStart, cycleEnd, counts, out[, kinds, slab, reserved])
// Classifies pfn .. stop-1 of the struct pages in `pages` (pfn blockStart at offset 0), clearing
// each excluded range inside [cycleStart, cycleEnd) in `bitmap` (bit i = pfn cycleStart + i) and
// adding its pages to counts[class], then skipping over it, like page-filter.ts walkCycle.
// `lastNext`: no pfn at or beyond it has a following struct page to look at (the section's end).
// out[0] = the pfn to continue at; out[1] = the end of a range that runs past cycleEnd, else 0.
// With `kinds` (a KindState array) each kept slab pfn is appended to `slab`, each run of kept
// PG_reserved pfns to `reserved` (Uint32Arrays), while they have room.
Napi::Value WalkStructPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Rules r = readRules(env, info[0].As<Napi::Float64Array>(), info[1].As<Napi::BigUint64Array>());
  auto pages = info[2].As<Napi::Buffer<unsigned char>>();
  double blockStart = info[3].As<Napi::Number>().DoubleValue();
  double pfn = info[4].As<Napi::Number>().DoubleValue();
  double stop = info[5].As<Napi::Number>().DoubleValue();
  double lastNext = info[6].As<Napi::Number>().DoubleValue();
  auto bitmap = info[7].As<Napi::Buffer<unsigned char>>();
  double cycleStart = info[8].As<Napi::Number>().DoubleValue();
  double cycleEnd = info[9].As<Napi::Number>().DoubleValue();
  auto counts = info[10].As<Napi::Float64Array>();
  auto out = info[11].As<Napi::Float64Array>();
  const size_t size = static_cast<size_t>(r.sizePage);
  // Every struct page looked at (and the one after it) must be inside `pages`, every bit inside `bitmap`.
  const double blockPages = size ? static_cast<double>(pages.Length() / size) : 0;
  if (size == 0 || pfn < blockStart || stop > blockStart + blockPages || cycleEnd < cycleStart
      || static_cast<double>(bitmap.Length()) * 8 < cycleEnd - cycleStart || counts.ElementLength() < 6 || out.ElementLength() < 2)
    throw Napi::RangeError::New(env, "walkStructPages: arguments outside their buffers");
  KindSink sink{};
  bool kinds = readKindSink(info, 12, "walkStructPages", &sink);
  Bounds bounds{cycleStart, cycleEnd, cycleEnd};
  double beyond = 0;
  pfn = walkBlock(r, pages.Data(), blockStart, pfn, stop, lastNext, blockPages, bitmap.Data(), bounds, counts.Data(), kinds ? &sink : nullptr, &beyond, nullptr);
  out[0] = pfn;
  out[1] = beyond;
  return env.Undefined();
}

// One section of a cycle's walk plan (see WalkCycle).
struct PlanSection {
  double pfnStart, lastNext, firstPfn;
  std::vector<double> segs;     // [from, to) pairs, ascending
  std::vector<double> extents;  // (byteFrom, byteTo, fileOffset) triples: bytes of the section's struct pages in the file
  double weight;                // pfns to walk
};

// Reads bytes [from, to) of a section's struct pages (byte 0 = the struct page of pfnStart) into
// dst, through its extents (ascending). Returns 0, or an errno (EFAULT: a byte in no extent; -1:
// the file ends before them; EIO or EHWPOISON: a load from the mapped vmcore faulted, and those
// bytes are not read again with pread: mapped-fault.h).
int readStructPages(const PlanSection& s, int fd, lastword::VmcoreWindow* window, unsigned char* dst, double from, double to) {
  const std::vector<double>& e = s.extents;
  for (size_t k = 0; k + 2 < e.size() && from < to; k += 3) {
    if (e[k + 1] <= from) continue;
    if (e[k] > from) break;
    double n = std::min(to, e[k + 1]) - from;
    off_t off = static_cast<off_t>(e[k + 2] + (from - e[k]));
    size_t len = static_cast<size_t>(n);
    int r = window ? window->read(fd, 0, dst, len, off) : 1;
    if (r < -1) return -r;
    if (r != 0) {
      if (int err = lastword::preadAll(fd, dst, len, off)) return err;
    }
    dst += len;
    from += n;
  }
  return from < to ? EFAULT : 0;
}

struct CycleShare {
  size_t first = 0, last = 0;  // sections [first, last)
  Bounds bounds{0, 0, 0};
  double counts[6] = {0, 0, 0, 0, 0, 0};
  double beyond = 0, skipEnd = 0;
  std::vector<Overhang> over;
  int err = 0;
};

// Walks the sections of one share as page-filter.ts walkCycle does, a block of 512 struct pages at
// a time (read from pfn to the block's end, makedumpfile's page cache).
void walkShare(const Rules& r, const std::vector<PlanSection>& secs, CycleShare* sh, int fd, bool mapped, unsigned char* bitmap, KindSink* sink) {
  const size_t size = static_cast<size_t>(r.sizePage);
  std::vector<unsigned char> buf(512 * size);
  lastword::VmcoreWindow window;
  for (size_t i = sh->first; i < sh->last; i++) {
    const PlanSection& s = secs[i];
    double pfn = s.firstPfn;
    double beyond = 0;
    for (size_t k = 0; k + 1 < s.segs.size(); k += 2) {
      if (pfn < s.segs[k]) pfn = s.segs[k];
      const double to = s.segs[k + 1];
      while (pfn < to) {
        double block = static_cast<double>(static_cast<uint64_t>(pfn) & ~511ULL);
        double limit = std::min(to, block + 512);
        double readEnd = std::min(block + 512, s.lastNext);
        unsigned char* at = buf.data() + static_cast<size_t>(pfn - block) * size;
        if (int err = readStructPages(s, fd, mapped ? &window : nullptr, at, (pfn - s.pfnStart) * static_cast<double>(size), (readEnd - s.pfnStart) * static_cast<double>(size))) {
          sh->err = err;
          return;
        }
        pfn = walkBlock(r, buf.data(), block, pfn, limit, s.lastNext, 512, bitmap, sh->bounds, sh->counts, sink, &beyond, &sh->over);
      }
    }
    if (beyond > 0) {
      sh->beyond = std::max(sh->beyond, beyond);
      if (s.lastNext > sh->bounds.cycleEnd) sh->skipEnd = beyond;
    }
  }
}

// walkCycle(rules, ptrs, plan, fd, mapped, bitmap, cycleStart, cycleEnd, counts, out, threads[, kinds, slab, reserved]) -> 0, errno or -1
// The whole cycle's walk in one call: page-filter.ts walkCycle's loop over sections, PT_LOAD pieces
// and blocks, with the struct pages read here from the vmcore file (through mappings when `mapped`).
// plan = [sections, then per section: pfnStart, lastNext (its end), firstPfn (where its walk starts),
// segs, extents, segs x (from, to) (its pfns inside PT_LOADs, in order), extents x (byteFrom, byteTo,
// fileOffset)]. With threads > 1 (and no kinds) the sections are shared out in runs of about equal
// pfns, one run per thread (this one included); each clears bits only up to where the next run
// starts (a byte boundary), and what a range reaches beyond that is cleared and counted here after
// all are done. Nothing else depends on the order: the walk never reads the bitmap, and a run's
// sections start their walks at their own first pfn, as they do in one thread.
// out[0] = the end of a range that runs past cycleEnd (else 0); out[1] = the same for the section
// that goes on past cycleEnd (the next cycle's walk of it resumes there), else 0.
// A read that fails returns its errno (-1: the file ends early), with the bitmap half walked: the
// caller walks the cycle again its own way.
Napi::Value WalkCycle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Rules r = readRules(env, info[0].As<Napi::Float64Array>(), info[1].As<Napi::BigUint64Array>());
  auto plan = info[2].As<Napi::Float64Array>();
  int fd = info[3].As<Napi::Number>().Int32Value();
  bool mapped = info[4].As<Napi::Boolean>().Value();
  auto bitmap = info[5].As<Napi::Buffer<unsigned char>>();
  double cycleStart = info[6].As<Napi::Number>().DoubleValue();
  double cycleEnd = info[7].As<Napi::Number>().DoubleValue();
  auto counts = info[8].As<Napi::Float64Array>();
  auto out = info[9].As<Napi::Float64Array>();
  int threads = std::max(1, info[10].As<Napi::Number>().Int32Value());
  if (r.sizePage <= 0 || cycleEnd < cycleStart || static_cast<double>(bitmap.Length()) * 8 < cycleEnd - cycleStart
      || counts.ElementLength() < 6 || out.ElementLength() < 2)
    throw Napi::RangeError::New(env, "walkCycle: arguments outside their buffers");
  KindSink sink{};
  bool kinds = readKindSink(info, 11, "walkCycle", &sink);
  if (kinds) threads = 1;  // the sink's lists are in pfn order

  // The plan, checked: every pfn walked inside the cycle, every read inside its section's struct pages.
  const double* p = plan.Data();
  const size_t n = plan.ElementLength();
  size_t at = 0;
  auto bad = [&]() { return Napi::RangeError::New(env, "walkCycle: malformed plan"); };
  if (n < 1) throw bad();
  const size_t count = static_cast<size_t>(p[at++]);
  std::vector<PlanSection> secs(count);
  double total = 0;
  for (PlanSection& s : secs) {
    if (at + 5 > n) throw bad();
    s.pfnStart = p[at]; s.lastNext = p[at + 1]; s.firstPfn = p[at + 2];
    size_t nSegs = static_cast<size_t>(p[at + 3]), nExt = static_cast<size_t>(p[at + 4]);
    at += 5;
    if (at + 2 * nSegs + 3 * nExt > n) throw bad();
    s.segs.assign(p + at, p + at + 2 * nSegs);
    at += 2 * nSegs;
    s.extents.assign(p + at, p + at + 3 * nExt);
    at += 3 * nExt;
    s.weight = 0;
    for (size_t k = 0; k < s.segs.size(); k += 2) {
      if (s.segs[k] < cycleStart || s.segs[k + 1] > cycleEnd || s.segs[k] < s.pfnStart || s.segs[k + 1] > s.lastNext) throw bad();
      s.weight += s.segs[k + 1] - s.segs[k];
    }
    total += s.weight;
  }

  // Shares: runs of sections of about total / threads pfns each, split only where a section starts
  // on a byte of the bitmap.
  std::vector<CycleShare> shares;
  size_t first = 0;
  double acc = 0;
  for (size_t i = 0; i < secs.size(); i++) {
    bool aligned = ((static_cast<uint64_t>(secs[i].pfnStart) - static_cast<uint64_t>(cycleStart)) & 7) == 0 && secs[i].pfnStart > cycleStart;
    if (i > first && aligned && static_cast<int>(shares.size()) + 1 < threads && acc >= total * (shares.size() + 1) / threads) {
      CycleShare sh;
      sh.first = first; sh.last = i;
      shares.push_back(sh);
      first = i;
    }
    acc += secs[i].weight;
  }
  CycleShare lastShare;
  lastShare.first = first; lastShare.last = secs.size();
  shares.push_back(lastShare);
  for (size_t g = 0; g < shares.size(); g++) {
    double clearEnd = g + 1 < shares.size() ? secs[shares[g + 1].first].pfnStart : cycleEnd;
    shares[g].bounds = Bounds{cycleStart, clearEnd, cycleEnd};
  }

  unsigned char* bm = bitmap.Data();
  std::vector<std::thread> helpers;
  for (size_t g = 1; g < shares.size(); g++) {
    helpers.emplace_back(walkShare, std::cref(r), std::cref(secs), &shares[g], fd, mapped, bm, nullptr);
  }
  walkShare(r, secs, &shares[0], fd, mapped, bm, kinds ? &sink : nullptr);
  for (std::thread& t : helpers) t.join();

  double beyond = 0, skipEnd = 0;
  for (const CycleShare& sh : shares) {
    if (sh.err) return Napi::Number::New(env, sh.err);
    for (int k = 0; k < 6; k++) counts[k] = counts[k] + sh.counts[k];
    for (const Overhang& o : sh.over) {
      if (o.to > o.from) {
        clearBits(bm, static_cast<size_t>(o.from - cycleStart), static_cast<size_t>(o.to - cycleStart));
        counts[o.cls] = counts[o.cls] + (o.to - o.from);
      }
    }
    beyond = std::max(beyond, sh.beyond);
    if (sh.skipEnd > 0) skipEnd = sh.skipEnd;
  }
  out[0] = beyond;
  out[1] = skipEnd;
  return Napi::Number::New(env, 0);
}

// Bitmap arithmetic of the writers' passes, word by word (in JavaScript, a byte-table loop over
// the 128 KiB bitmaps of each 4 GiB cycle cost ~15 ms per run).
size_t countBits(const unsigned char* p, size_t bytes) {
  size_t n = 0, i = 0;
  for (; i + 8 <= bytes; i += 8) { uint64_t w; memcpy(&w, p + i, 8); n += __builtin_popcountll(w); }
  for (; i < bytes; i++) n += __builtin_popcount(p[i]);
  return n;
}

// popcount(bitmap, bits) -> bits set among the first `bits`.
Napi::Value Popcount(const Napi::CallbackInfo& info) {
  auto bm = info[0].As<Napi::Buffer<unsigned char>>();
  double bits = info[1].As<Napi::Number>().DoubleValue();
  if (bits < 0 || bits > static_cast<double>(bm.Length()) * 8) throw Napi::RangeError::New(info.Env(), "popcount: more bits than the bitmap has");
  size_t whole = static_cast<size_t>(bits) / 8, rest = static_cast<size_t>(bits) % 8;
  size_t n = countBits(bm.Data(), whole);
  if (rest) n += __builtin_popcount(bm.Data()[whole] & ((1u << rest) - 1));
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// andPopcount(dst, src, bytes): dst &= src over `bytes` bytes; returns the bits left set in dst.
Napi::Value AndPopcount(const Napi::CallbackInfo& info) {
  auto dst = info[0].As<Napi::Buffer<unsigned char>>();
  auto src = info[1].As<Napi::Buffer<unsigned char>>();
  double bytes = info[2].As<Napi::Number>().DoubleValue();
  if (bytes < 0 || bytes > static_cast<double>(dst.Length()) || bytes > static_cast<double>(src.Length()))
    throw Napi::RangeError::New(info.Env(), "andPopcount: more bytes than the bitmaps have");
  unsigned char* d = dst.Data();
  const unsigned char* s = src.Data();
  for (size_t i = 0, n = static_cast<size_t>(bytes); i < n; i++) d[i] &= s[i];
  return Napi::Number::New(info.Env(), static_cast<double>(countBits(d, static_cast<size_t>(bytes))));
}

// scanPointers(pages, base, pageSize, maxPfn, selfFirst, selfEnd, out) -> n: for each 64-bit word
// of `pages` that points into the direct map (base = PAGE_OFFSET, a BigInt) below pfn maxPfn and
// outside [selfFirst, selfEnd) (the pages read), its pfn into `out` (a Uint32Array), a pfn equal to
// the one before left out; at most out's length (pfns from 2^32 on are left out). crash-first.ts puts what they point to first.
Napi::Value ScanPointers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto pages = info[0].As<Napi::Buffer<unsigned char>>();
  bool lossless = false;
  uint64_t base = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
  double pageSize = info[2].As<Napi::Number>().DoubleValue();
  double maxPfn = info[3].As<Napi::Number>().DoubleValue();
  double selfFirst = info[4].As<Napi::Number>().DoubleValue();
  double selfEnd = info[5].As<Napi::Number>().DoubleValue();
  auto out = info[6].As<Napi::Uint32Array>();
  if (!lossless || pageSize < 8 || maxPfn < 0) throw Napi::RangeError::New(env, "scanPointers: bad base, page size or pfn limit");
  const uint64_t size = static_cast<uint64_t>(pageSize);
  // pfns past 16 TiB stay in pfn order (out holds 32-bit pfns).
  const uint64_t limit = maxPfn > 4294967295.0 ? 4294967295ULL : static_cast<uint64_t>(maxPfn);
  const unsigned char* p = pages.Data();
  size_t words = pages.Length() / 8, n = 0, cap = out.ElementLength();
  uint32_t* o = out.Data();
  uint64_t last = UINT64_MAX;
  for (size_t i = 0; i < words && n < cap; i++) {
    uint64_t w = u64(p + 8 * i);
    if (w < base) continue;
    uint64_t pfn = (w - base) / size;
    if (pfn >= limit || pfn == last) continue;
    if (static_cast<double>(pfn) >= selfFirst && static_cast<double>(pfn) < selfEnd) continue;
    o[n++] = static_cast<uint32_t>(pfn);
    last = pfn;
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("scanPointers", Napi::Function::New(env, ScanPointers));
  exports.Set("walkStructPages", Napi::Function::New(env, WalkStructPages));
  exports.Set("walkCycle", Napi::Function::New(env, WalkCycle));
  exports.Set("popcount", Napi::Function::New(env, Popcount));
  exports.Set("andPopcount", Napi::Function::New(env, AndPopcount));
  return exports;
}

}  // namespace

NODE_API_MODULE(filter, Init)
