// Loads from a mapping of the vmcore that may fault. A page of a mapped file that cannot be read
// raises SIGBUS on the load instead of failing a read(): the file's read failed (EIO: a bad sector,
// a FUSE or NFS file), or, in /proc/vmcore, the crashed kernel's page is hardware-poisoned (a memory
// error, often what crashed the machine; si_code BUS_MCEERR_AR). Left alone the signal ends the
// process: makedumpfile dies of it with a partial file, and lastword capturing in PID 1 would take
// the capture kernel down with it. guardedCopy and guardedTouch catch it for the bytes they read and
// return its errno (EIO, or EHWPOISON for a memory error), so those pages count as unreadable, like a
// failed pread, and every other page is still saved. The caller must not read() the same bytes
// again from /proc/vmcore: the kernel's copy of a poisoned page is a machine check in the kernel.
//
// The handler finds the guarded range by the fault address, in a fixed table (nothing in it
// allocates or takes a lock, as a signal handler must not), and jumps back into the thread that
// guarded it (a synchronous SIGBUS is delivered to the thread whose load faulted, and each thread
// reads its own windows). Each addon is its own shared object with its own table and handler,
// chained to the handler installed before it; a SIGBUS of no guarded range goes down the chain to
// the default action, which ends the process as it would without any of this.
#pragma once
#include <setjmp.h>
#include <signal.h>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>

#ifndef EHWPOISON
#define EHWPOISON 133
#endif

namespace lastword {
namespace {

struct FaultSlot {
  std::atomic<uintptr_t> lo{0};
  std::atomic<uintptr_t> hi{0};
  sigjmp_buf* jump = nullptr;
  volatile int code = 0;
  std::atomic<bool> taken{false};
};

// More than the threads that ever read the vmcore at once (the main thread, the mem_map walk's and
// the compression threads); a thread that finds none free reads unguarded, as before.
constexpr int kFaultSlots = 64;
FaultSlot gFaultSlots[kFaultSlots];
struct sigaction gPreviousBus;
std::once_flag gBusInstalled;

void onBus(int sig, siginfo_t* si, void* ctx) {
  // Only a fault (si_code > 0) has a fault address; a SIGBUS sent by kill() has a pid there.
  uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
  for (FaultSlot& s : gFaultSlots) {
    if (si->si_code > 0 && a >= s.lo.load(std::memory_order_relaxed) && a < s.hi.load(std::memory_order_relaxed)) {
      s.code = si->si_code == BUS_MCEERR_AR || si->si_code == BUS_MCEERR_AO ? EHWPOISON : EIO;
      s.hi.store(0, std::memory_order_relaxed);
      s.lo.store(0, std::memory_order_relaxed);
      siglongjmp(*s.jump, 1);
    }
  }
  if (gPreviousBus.sa_flags & SA_SIGINFO) {
    if (gPreviousBus.sa_sigaction) { gPreviousBus.sa_sigaction(sig, si, ctx); return; }
  } else if (gPreviousBus.sa_handler != SIG_DFL && gPreviousBus.sa_handler != SIG_IGN) {
    gPreviousBus.sa_handler(sig);
    return;
  }
  // The default action: a fault's load runs again when this returns and the signal ends the process;
  // a SIGBUS sent by kill() (si_code <= 0) is sent again.
  signal(SIGBUS, SIG_DFL);
  if (si->si_code <= 0) raise(SIGBUS);
}

void installBusHandler() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = onBus;
  // SA_NODEFER: the jump leaves the handler without restoring the signal mask (sigsetjmp(…, 0) is
  // cheap: no system call), so SIGBUS must not be blocked while it runs.
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &gPreviousBus);
}

// This thread's slot, taken on its first guarded load and given back when the thread ends.
struct SlotHolder {
  FaultSlot* slot = nullptr;
  bool tried = false;
  ~SlotHolder() {
    if (slot) slot->taken.store(false);
  }
  __attribute__((noinline)) FaultSlot* get() {
    if (tried) return slot;
    tried = true;
    std::call_once(gBusInstalled, installBusHandler);
    for (FaultSlot& s : gFaultSlots) {
      bool expected = false;
      if (s.taken.compare_exchange_strong(expected, true)) { slot = &s; break; }
    }
    return slot;
  }
};
thread_local SlotHolder tFaultSlot;

// Arms `slot` for [p, p + n) and jumps there from the handler; the stores are ordered against the
// guarded loads for this thread's signal handler.
inline void arm(FaultSlot* slot, sigjmp_buf* jump, const unsigned char* p, size_t n) {
  slot->jump = jump;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  slot->lo.store(reinterpret_cast<uintptr_t>(p), std::memory_order_relaxed);
  slot->hi.store(reinterpret_cast<uintptr_t>(p) + n, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

inline void disarm(FaultSlot* slot) {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  slot->hi.store(0, std::memory_order_relaxed);
  slot->lo.store(0, std::memory_order_relaxed);
}

}  // namespace

// Copies n bytes of a mapping from src to dst. Returns 0, or EIO / EHWPOISON when a load faulted
// (dst then holds part of the bytes).
inline int guardedCopy(unsigned char* dst, const unsigned char* src, size_t n) {
  FaultSlot* slot = tFaultSlot.get();
  if (!slot) { memcpy(dst, src, n); return 0; }
  sigjmp_buf jump;
  if (sigsetjmp(jump, 0) != 0) return slot->code;
  arm(slot, &jump, src, n);
  memcpy(dst, src, n);
  disarm(slot);
  return 0;
}

// Loads every 64-byte line of n bytes of a mapping, so that what reads them next (a compressor)
// cannot fault. Returns 0, or EIO / EHWPOISON when a load faulted.
inline int guardedTouch(const unsigned char* src, size_t n) {
  FaultSlot* slot = tFaultSlot.get();
  if (!slot) return 0;
  sigjmp_buf jump;
  if (sigsetjmp(jump, 0) != 0) return slot->code;
  arm(slot, &jump, src, n);
  const volatile unsigned char* p = src;
  for (size_t i = 0; i < n; i += 64) (void)p[i];
  if (n > 0) (void)p[n - 1];
  disarm(slot);
  return 0;
}

}  // namespace lastword
