// Reading /proc/vmcore through a mapping of it instead of read(): the kernel copies a read of
// /proc/vmcore out of the crashed kernel's memory one page at a time (copy_oldmem_page maps and
// unmaps each page), while mmap() of it maps a whole window of old memory at once
// (remap_oldmem_pfn_range), so the bytes are then plain memory. makedumpfile reads it the same way
// (4 MiB windows, update_mmap_range). Measured in a 6.1 capture kernel under QEMU TCG: 560 MB/s with
// pread of 1 MiB, 2.4-2.6 GB/s through 4 MiB windows. Used by three addons: the system addon for the
// main thread's reads (ELF output, the page tables), the filter addon on each thread of the mem_map
// walk, the codecs addon on each compression thread (which compresses from the mapping: view()).
#pragma once
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include "mapped-fault.h"

namespace lastword {

// Reads len bytes at off of fd into dst, as many preads as it takes. Returns 0, the errno of the
// failed read, or -1 at the end of the file.
inline int preadAll(int fd, unsigned char* dst, size_t len, off_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, dst + got, len - got, off + static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno;
    if (r == 0) return -1;
    got += static_cast<size_t>(r);
  }
  return 0;
}

class VmcoreWindow {
 public:
  static constexpr size_t kWindow = 4u << 20;

  VmcoreWindow() = default;
  VmcoreWindow(const VmcoreWindow&) = delete;
  VmcoreWindow& operator=(const VmcoreWindow&) = delete;
  ~VmcoreWindow() { unmap(); }

  // Copies len bytes at off of fd into dst. Returns 0; -1 when [off, off + len) reaches past the end
  // of the file (as a short pread would); the errno of a failed fstat/mmap (the caller then preads);
  // or minus the errno of a load from the mapping that faulted (-EIO, -EHWPOISON: mapped-fault.h),
  // which the caller takes as a data error of those bytes and must not pread again.
  // `generation` changes when the fd may name another file (a vmcore closed and another opened).
  int read(int fd, unsigned generation, unsigned char* dst, size_t len, off_t off) {
    if (int err = use(fd, generation)) return err;
    if (off < 0 || static_cast<off_t>(off + len) > size_) return -1;
    while (len > 0) {
      if (!inWindow(off)) {
        // A pread that fails leaves it to the mapping, as before.
        if (isJump(off, len) && pread(fd_, dst, len, off) == static_cast<ssize_t>(len)) {
          next_ = off + static_cast<off_t>(len);
          return 0;
        }
        if (int err = map(off)) return err;
      }
      size_t n = std::min(len, static_cast<size_t>(base_ + static_cast<off_t>(len_) - off));
      if (int err = guardedCopy(dst, p_ + (off - base_), n)) return -err;
      dst += n;
      off += n;
      len -= n;
    }
    next_ = off;
    return 0;
  }

  // len bytes at off of fd where they are mapped (mapping their window if needed), valid until the
  // next read or view; nullptr when they cross a window's end, lie far from the last read (where
  // read() would pread), or cannot be mapped: then read() them. Nothing is copied.
  const unsigned char* view(int fd, unsigned generation, size_t len, off_t off) {
    if (use(fd, generation) != 0) return nullptr;
    if (off < 0 || static_cast<off_t>(off + len) > size_ || len > kWindow) return nullptr;
    if (!inWindow(off) && (isJump(off, len) || map(off) != 0)) return nullptr;
    if (off + static_cast<off_t>(len) > base_ + static_cast<off_t>(len_)) return nullptr;
    next_ = off + static_cast<off_t>(len);
    return p_ + (off - base_);
  }

  // Windows mapped so far (tests check that reads really went through mappings).
  unsigned long windows() const { return windows_; }

  // Unmaps and forgets the file.
  void reset() {
    unmap();
    fd_ = -1;
  }

 private:
  bool inWindow(off_t off) const { return p_ && off >= base_ && off < base_ + static_cast<off_t>(len_); }

  // A jump of a window or more, for less than a window: one pread costs less than mapping a window
  // for it (mapping sets up 4 MiB of old memory: ~1 ms under TCG), and scattered reads (page tables,
  // the pages a dump writes crash-first) would map a window per read. A read near the last one
  // maps, so sequential reads still go through windows.
  bool isJump(off_t off, size_t len) const {
    off_t dist = off > next_ ? off - next_ : next_ - off;
    return len < kWindow / 4 && dist >= static_cast<off_t>(kWindow);
  }

  // Switches to fd (its windows from before forgotten) unless it is the file in use. 0 or errno.
  int use(int fd, unsigned generation) {
    if (fd == fd_ && generation == generation_) return 0;
    reset();
    struct stat st;
    if (fstat(fd, &st) != 0) return errno;
    fd_ = fd;
    generation_ = generation;
    size_ = st.st_size;
    return 0;
  }

  int map(off_t off) {
    unmap();
    off_t base = off & ~static_cast<off_t>(kWindow - 1);
    // Never past the end of the file: mmap of /proc/vmcore refuses a range beyond its size (page-aligned).
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t len = std::min(kWindow, (static_cast<size_t>(size_ - base) + page - 1) & ~(page - 1));
    void* p = mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd_, base);
    if (p == MAP_FAILED) return errno;
    p_ = static_cast<unsigned char*>(p);
    base_ = base;
    len_ = len;
    windows_++;
    return 0;
  }

  void unmap() {
    if (p_) munmap(p_, len_);
    p_ = nullptr;
    len_ = 0;
  }

  int fd_ = -1;
  unsigned generation_ = 0;
  off_t size_ = 0;
  off_t base_ = 0;
  size_t len_ = 0;
  unsigned char* p_ = nullptr;
  unsigned long windows_ = 0;
  // Where the last read ended: a read far from it is a jump.
  off_t next_ = 0;
};

}  // namespace lastword
