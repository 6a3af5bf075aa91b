// Page compression for kdump-compressed dumps, one call per BATCH of pages: a per-page call into
// node:zlib costs ~20 us, more than compressing the page. lzo1x_1, raw snappy and zstd level 1 are
// exactly what makedumpfile writes. zlib pages are written by libdeflate at level 2 instead of
// makedumpfile's compress2(Z_BEST_SPEED): the same RFC 1950 stream format that crash, drgn,
// libkdumpfile and makedumpfile read with zlib's uncompress(), but ~1.5x faster per 4 KiB page and
// 2-3% smaller (libdeflate level 1 would be faster still but larger than makedumpfile on -d 31 data).
// Pages are read back with zlib.
//
// CompressPool runs batches on the addon's own threads: a thread preads the batch's pages from
// the vmcore (or finds them in the batch), finds zero pages and compresses, while the main thread
// walks the next cycle. No worker_threads: no extra V8 isolate per compression thread. The JS
// buffers of a batch are held by persistent references until its result was reported, so the GC
// cannot free them under us. Scratch state is thread-local, so every thread has its own.
#include <napi.h>
#include <libdeflate.h>
#include <zlib.h>
#include "codec-libs.h"
#include "vmcore-window.h"
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <cstring>
#include <pthread.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using codec_libs::lzo;
using codec_libs::snappy;
using codec_libs::zstd;

// makedumpfile diskdump_mod.h
constexpr uint32_t kZlib = 0x01, kLzo = 0x02, kSnappy = 0x04, kZstd = 0x20;

struct Scratch {
  std::vector<unsigned char> out;
  std::vector<unsigned char> src;      // a batch's pages read from the vmcore by this thread
  std::vector<int> unreadable;         // per page of that batch: 0, or the errno its read failed with (-1: end of file)
  std::vector<unsigned char> lzoWork;
  libdeflate_compressor* deflater = nullptr;
  ZSTD_CCtx* zcctx = nullptr;
  ZSTD_DCtx* zdctx = nullptr;
  ~Scratch() {
    if (deflater) libdeflate_free_compressor(deflater);
    if (zcctx) zstd.freeCCtx(zcctx);
    if (zdctx) zstd.freeDCtx(zdctx);
  }
};
thread_local Scratch scratch;

bool allZero(const unsigned char* p, size_t n) {
  // Word-wise: zero pages are common and this runs for every page.
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  for (size_t i = 0; i < n / 8; i++) if (w[i]) return false;
  for (size_t i = n & ~size_t(7); i < n; i++) if (p[i]) return false;
  return true;
}

// Worst-case output of each codec for n input bytes: the buffer a page is compressed into must
// hold this much, an incompressible page expands (lzo: lzo1x.h, snappy/zstd: their bound calls).
size_t bound(uint32_t method, size_t n) {
  switch (method) {
    case kZlib: return compressBound(n);
    case kLzo: return n + n / 16 + 64 + 3;
    case kSnappy: return snappy.maxLength(n);
    case kZstd: return ZSTD_COMPRESSBOUND(n);
    default: return n;
  }
}

// The zlib level (see the top of this file); 1 is faster but writes more bytes than makedumpfile.
constexpr int kDeflateLevel = 2;

// A zlib stream of the page, or 0 when it does not fit in cap (the caller then stores the page raw,
// as makedumpfile does when compress2 cannot make it smaller).
size_t zlibCompress(const unsigned char* src, size_t n, unsigned char* dst, size_t cap) {
  if (!scratch.deflater) scratch.deflater = libdeflate_alloc_compressor(kDeflateLevel);
  if (!scratch.deflater) return 0;
  return libdeflate_zlib_compress(scratch.deflater, src, n, dst, cap);
}

// Returns the compressed size, or 0 when the codec failed (the caller stores the page raw).
// dst must hold bound(method, n) bytes. The codec's library is open (codecError was checked by
// whoever chose the method: see knownMethod).
size_t compressOne(uint32_t method, const unsigned char* src, size_t n, unsigned char* dst, size_t cap) {
  switch (method) {
    case kZlib: return zlibCompress(src, n, dst, cap);
    case kLzo: {
      if (scratch.lzoWork.size() < LZO1X_1_MEM_COMPRESS) scratch.lzoWork.resize(LZO1X_1_MEM_COMPRESS);
      lzo_uint len = cap;
      return lzo.compress(src, n, dst, &len, scratch.lzoWork.data()) == LZO_E_OK ? len : 0;
    }
    case kSnappy: {
      size_t len = cap;
      return snappy.compress(reinterpret_cast<const char*>(src), n, reinterpret_cast<char*>(dst), &len) == SNAPPY_OK ? len : 0;
    }
    case kZstd: {
      if (!scratch.zcctx) scratch.zcctx = zstd.createCCtx();
      if (!scratch.zcctx) return 0;
      size_t len = zstd.compressCCtx(scratch.zcctx, dst, cap, src, n, 1);
      return zstd.isError(len) ? 0 : len;
    }
  }
  return 0;
}

bool knownMethod(uint32_t m) { return m == 0 || m == kZlib || m == kLzo || m == kSnappy || m == kZstd; }

const char* methodName(uint32_t m) {
  switch (m) {
    case kZlib: return "zlib";
    case kLzo: return "lzo";
    case kSnappy: return "snappy";
    case kZstd: return "zstd";
    default: return "none";
  }
}

// Throws unless `method` is known and its library could be opened (see codec-libs.h).
void requireCodec(Napi::Env env, uint32_t method) {
  if (!knownMethod(method)) throw Napi::RangeError::New(env, "unknown compression method");
  const std::string& err = codec_libs::codecError(method);
  if (!err.empty()) throw Napi::Error::New(env, std::string(methodName(method)) + ": " + err);
}

// One batch: raw pointers into JS buffers that the caller keeps alive for the whole run.
struct Batch {
  uint32_t method = 0;
  int fd = -1;                 // < 0: src already holds the pages
  const double* spans = nullptr;  // [fileOffset, bytes] pairs filling src in order; offset < 0 = zeros
  size_t nspans = 0;
  unsigned char* src = nullptr;
  size_t srcLen = 0;
  size_t pageSize = 0;
  size_t count = 0;
  unsigned char* dst = nullptr;
  size_t dstLen = 0;
  uint32_t* sizes = nullptr;
  bool detectZero = false;
};

using lastword::preadAll;

// The vmcore fd whose reads go through mappings (/proc/vmcore; vmcore-window.h), -1 for none; set
// by mapReads before batches are submitted. Each thread maps its own windows.
std::atomic<int> gMappedFd{-1};
std::atomic<unsigned> gMapGeneration{0};
std::atomic<unsigned long> gWindows{0};
thread_local lastword::VmcoreWindow window;

// preadAll, through this thread's window when fd is the mapped vmcore. A failed mmap turns mapping
// off for good (the reads are then preads, as before). A load from the window that faulted is the
// data error it stands for (EIO, EHWPOISON), without a pread of the same bytes (mapped-fault.h).
int readVmcore(int fd, unsigned char* dst, size_t len, off_t off) {
  if (fd >= 0 && fd == gMappedFd.load(std::memory_order_relaxed)) {
    unsigned long before = window.windows();
    int err = window.read(fd, gMapGeneration.load(std::memory_order_relaxed), dst, len, off);
    gWindows.fetch_add(window.windows() - before, std::memory_order_relaxed);
    if (err == 0 || err == -1) return err;
    if (err < -1) return -err;
    gMappedFd.store(-1);
  }
  return preadAll(fd, dst, len, off);
}

// Errors of the data, not of the call: the pages they hit are lost, the others are still saved.
// EIO: a bad sector under a copied vmcore; ENOMEM, EFAULT: what the kernels' copy_oldmem_page()
// returns to a read of /proc/vmcore when it cannot map or copy a page of the old kernel; EHWPOISON:
// a load from the mapped vmcore hit a memory error (mapped-fault.h); -1: the vmcore file ends early
// (a copy cut short).
bool pageDataError(int err) { return err == EIO || err == ENXIO || err == EFAULT || err == ENOMEM || err == ENODATA || err == EHWPOISON || err == -1; }

// Reads one span (len bytes at file offset off; off < 0: a hole, zeros) into b.src at `at`. A read
// that fails with a data error is done again page by page: the pages that still fail read as zeros
// and are marked in scratch.unreadable, so compressBatch reports them instead of losing the rest of
// the dump. Returns "" or an error message (an error that is no data error ends the dump).
std::string readSpan(Batch& b, double off, size_t len, size_t at) {
  if (at + len > b.srcLen) return "read spans exceed the page buffer";
  if (off < 0) {
    memset(b.src + at, 0, len);
  } else if (int err = readVmcore(b.fd, b.src + at, len, static_cast<off_t>(off)); err != 0) {
    if (!pageDataError(err)) return std::string("pread at offset ") + std::to_string(static_cast<long long>(off)) + ": " + strerror(err);
    // Page by page (pieces end at the batch's page boundaries, where a span may start mid-page).
    for (size_t p = 0; p < len;) {
      size_t piece = std::min(len - p, b.pageSize - (at + p) % b.pageSize);
      int e = readVmcore(b.fd, b.src + at + p, piece, static_cast<off_t>(off + p));
      if (e != 0) {
        if (!pageDataError(e)) return std::string("pread at offset ") + std::to_string(static_cast<long long>(off + p)) + ": " + strerror(e);
        memset(b.src + at + p, 0, piece);
        scratch.unreadable[(at + p) / b.pageSize] = e;
      }
      p += piece;
    }
  }
  return "";
}

// Points b.src at this thread's scratch buffer, big enough for the batch, and clears the marks of
// unreadable pages: the pages are only needed until they are compressed, so one buffer per thread
// instead of one per batch in flight (a 256 KiB page buffer per queued batch was ~1 MiB of peak RSS).
void useScratch(Batch& b) {
  size_t need = b.pageSize * b.count;
  if (scratch.src.size() < need) scratch.src.resize(need);
  scratch.unreadable.assign(b.count, 0);
  b.src = scratch.src.data();
  b.srcLen = scratch.src.size();
}

// Reads the spans into this thread's scratch buffer (readSpan). Returns "" or an error message.
std::string readSpans(Batch& b) {
  useScratch(b);
  size_t at = 0;
  for (size_t i = 0; i < b.nspans; i++) {
    size_t len = static_cast<size_t>(b.spans[2 * i + 1]);
    std::string err = readSpan(b, b.spans[2 * i], len, at);
    if (!err.empty()) return err;
    at += len;
  }
  if (b.fd >= 0 && at != b.pageSize * b.count) return "read spans do not cover the batch";
  return "";
}

// sizes[i] of a page that could not be read: kUnreadable | errno (0xffff: end of file).
constexpr uint32_t kUnreadable = 0xffff0000u;

// Compresses page i (at `page`) into dst at *used and sets b.sizes[i]: < pageSize compressed,
// == pageSize raw, 0 = all-zero page (detectZero; nothing stored), kUnreadable | errno = its read
// failed (readSpan; nothing stored). cap = bound(method, pageSize).
void compressPage(const Batch& b, size_t i, const unsigned char* page, size_t cap, size_t* used) {
  if (b.fd >= 0 && scratch.unreadable[i] != 0) {
    b.sizes[i] = kUnreadable | static_cast<uint32_t>(scratch.unreadable[i] & 0xffff);
    return;
  }
  if (b.detectZero && allZero(page, b.pageSize)) { b.sizes[i] = 0; return; }
  size_t len = 0;
  if (b.method) {
    // Straight into dst when the worst case fits there, else through the scratch buffer: dst
    // holds count * pageSize, and an incompressible page's output is larger than a page.
    bool direct = b.dstLen - *used >= cap;
    unsigned char* out = direct ? b.dst + *used : scratch.out.data();
    len = compressOne(b.method, page, b.pageSize, out, cap);
    if (len > 0 && len < b.pageSize && !direct) memcpy(b.dst + *used, out, len);
  }
  if (len == 0 || len >= b.pageSize) {
    len = b.pageSize;
    memcpy(b.dst + *used, page, b.pageSize);
  }
  b.sizes[i] = static_cast<uint32_t>(len);
  *used += len;
}

size_t outputCap(const Batch& b) {
  size_t cap = bound(b.method, b.pageSize);
  if (scratch.out.size() < cap) scratch.out.resize(cap);
  return cap;
}

// Compresses every page of b.src into dst back to back; returns bytes used.
size_t compressBatch(const Batch& b) {
  size_t cap = outputCap(b);
  size_t used = 0;
  for (size_t i = 0; i < b.count; i++) compressPage(b, i, b.src + i * b.pageSize, cap, &used);
  return used;
}

// Compresses a batch, reading its pages first when they are in the vmcore file (b.fd >= 0; else
// the caller filled b.src). When the file is read through mappings (/proc/vmcore), a span of whole
// pages inside one window is compressed straight from the mapping, without the copy into the
// scratch buffer (the mapping is of the old kernel's memory, VM_PFNMAP: no RSS). Other spans are
// read into the scratch buffer (readSpan). Pages are compressed in order as soon as their bytes
// are there: a later span may map another window.
// Returns "" or an error message; *usedOut = bytes used in dst.
std::string readCompress(Batch& b, size_t* usedOut) {
  if (b.fd < 0) {
    *usedOut = compressBatch(b);
    return "";
  }
  if (b.fd != gMappedFd.load(std::memory_order_relaxed)) {
    std::string err = readSpans(b);
    if (err.empty()) *usedOut = compressBatch(b);
    return err;
  }
  useScratch(b);
  size_t cap = outputCap(b);
  size_t used = 0, at = 0, next = 0;      // next: the first page not compressed yet
  const size_t ps = b.pageSize;
  for (size_t i = 0; i < b.nspans; i++) {
    double off = b.spans[2 * i];
    size_t len = static_cast<size_t>(b.spans[2 * i + 1]);
    const unsigned char* mapped = nullptr;
    if (off >= 0 && at % ps == 0 && len % ps == 0 && next == at / ps && at + len <= ps * b.count) {
      unsigned long before = window.windows();
      mapped = window.view(b.fd, gMapGeneration.load(std::memory_order_relaxed), len, static_cast<off_t>(off));
      gWindows.fetch_add(window.windows() - before, std::memory_order_relaxed);
    }
    if (mapped) {
      // Every line of a page loaded under the fault guard first: a page that faults is unreadable,
      // and the compressor never loads a byte that could fault.
      for (size_t k = 0; k < len / ps; k++) {
        if (int e = lastword::guardedTouch(mapped + k * ps, ps)) scratch.unreadable[next + k] = e;
        compressPage(b, next + k, mapped + k * ps, cap, &used);
      }
      next += len / ps;
    } else {
      std::string err = readSpan(b, off, len, at);
      if (!err.empty()) return err;
      for (; next < b.count && (next + 1) * ps <= at + len; next++) compressPage(b, next, b.src + next * ps, cap, &used);
    }
    at += len;
  }
  if (at != ps * b.count) return "read spans do not cover the batch";
  *usedOut = used;
  return "";
}

// The batch's buffers hold `count` pages in, `count` pages out (the worst case: all stored raw)
// and `count` sizes; checked before any thread touches them.
// (src only when the caller filled it: with fd >= 0 the pages are read into the thread's own buffer).
void requireRoom(Napi::Env env, const Batch& b, size_t sizesLen) {
  if (b.pageSize == 0 || (b.fd < 0 && b.srcLen < b.pageSize * b.count) || b.dstLen < b.pageSize * b.count || sizesLen < b.count)
    throw Napi::RangeError::New(env, "buffers too small for the page count");
}

// Arguments from position `a` on, shared by compressPagesSpans (a = 0) and CompressPool.submit (a = 1, after the id):
// (method, fd, spans: Float64Array, nspans, src, pageSize, count, dst, sizes: Uint32Array, detectZero)
Batch parseBatchAt(const Napi::CallbackInfo& info, size_t a) {
  Napi::Env env = info.Env();
  Batch b;
  b.method = info[a].As<Napi::Number>().Uint32Value();
  b.fd = info[a + 1].As<Napi::Number>().Int32Value();
  requireCodec(env, b.method);
  b.nspans = info[a + 3].As<Napi::Number>().Uint32Value();
  if (b.fd >= 0) {
    auto spans = info[a + 2].As<Napi::Float64Array>();
    if (spans.ElementLength() < 2 * b.nspans) throw Napi::RangeError::New(env, "span array shorter than its count");
    b.spans = spans.Data();
  }
  auto src = info[a + 4].As<Napi::Buffer<unsigned char>>();
  b.src = src.Data();
  b.srcLen = src.Length();
  b.pageSize = info[a + 5].As<Napi::Number>().Uint32Value();
  b.count = info[a + 6].As<Napi::Number>().Uint32Value();
  auto dst = info[a + 7].As<Napi::Buffer<unsigned char>>();
  b.dst = dst.Data();
  b.dstLen = dst.Length();
  auto sizes = info[a + 8].As<Napi::Uint32Array>();
  b.sizes = sizes.Data();
  b.detectZero = info[a + 9].ToBoolean();
  requireRoom(env, b, sizes.ElementLength());
  return b;
}

// The compression threads: `threads` std::threads of the addon's own (not libuv's threadpool,
// which also serves the dump's file writes), each taking the next queued batch as soon as it is
// done with one, so a thread never waits for the main thread to hand it work as long as batches
// are queued. `--num-threads N` is exactly N compressing threads. A finished batch is reported
// to JavaScript through a thread-safe function: onDone(id, used, error).
class CompressPool : public Napi::ObjectWrap<CompressPool> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CompressPool", {
      InstanceMethod<&CompressPool::Submit>("submit"),
      InstanceMethod<&CompressPool::Close>("close"),
    });
  }

  // new CompressPool(threads, onDone)
  CompressPool(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CompressPool>(info) {
    Napi::Env env = info.Env();
    uint32_t threads = info[0].As<Napi::Number>().Uint32Value();
    if (threads < 1 || threads > 256) throw Napi::RangeError::New(env, "compression threads must be 1..256");
    done_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "lastword:compress", 0, 1);
    done_.Unref(env);      // referenced only while batches are in flight (Submit / OnDone)
    for (uint32_t i = 0; i < threads; i++) {
      threads_.emplace_back([this] { Loop(); });
      pthread_setname_np(threads_.back().native_handle(), "lw-compress");      // as ps and /proc/PID/task/*/comm show them
    }
    env_ = env;
    napi_add_env_cleanup_hook(env_, Teardown, this);
  }

  ~CompressPool() {
    napi_remove_env_cleanup_hook(env_, Teardown, this);
    Stop();
  }

 private:
  struct Job { uint32_t id; Batch batch; };
  // The environment is going away (process exit) with the pool still open: end the threads.
  static void Teardown(void* self) { static_cast<CompressPool*>(self)->Stop(); }
  struct Result { uint32_t id; size_t used; std::string error; };

  // submit(id, method, fd, spans, nspans, src, pageSize, count, dst, sizes, detectZero): the
  // batch's buffers must stay untouched until onDone(id) (the pool holds references to them).
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (stopping_) throw Napi::Error::New(env, "compression pool is closed");
    uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    Batch b = parseBatchAt(info, 1);
    std::vector<Napi::ObjectReference> refs;
    // spans, src, dst, sizes: the arguments after the id, at parseBatchAt's positions + 1
    for (size_t i : {3, 5, 8, 9}) if (info[i].IsObject()) refs.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    held_[id] = std::move(refs);
    if (inFlight_++ == 0) done_.Ref(env);
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(Job{id, b});
    }
    cv_.notify_one();
    return env.Undefined();
  }

  // close(): the threads finish the queued batches and end; their results are still reported.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) if (t.joinable()) t.join();
    done_.Release();
  }

  void Loop() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;      // stopping, and nothing left
        job = queue_.front();
        queue_.pop_front();
      }
      auto* r = new Result{job.id, 0, ""};
      r->error = readCompress(job.batch, &r->used);
      if (done_.NonBlockingCall(r, [this](Napi::Env env, Napi::Function onDone, Result* res) { OnDone(env, onDone, res); }) != napi_ok) delete r;
    }
  }

  void OnDone(Napi::Env env, Napi::Function onDone, Result* r) {
    std::unique_ptr<Result> res(r);
    held_.erase(r->id);
    if (--inFlight_ == 0 && env) done_.Unref(env);
    if (!env || !onDone) return;
    onDone.Call({Napi::Number::New(env, r->id), Napi::Number::New(env, static_cast<double>(r->used)),
                 r->error.empty() ? env.Null() : Napi::String::New(env, r->error)});
  }

  napi_env env_ = nullptr;
  Napi::ThreadSafeFunction done_;
  std::vector<std::thread> threads_;
  std::deque<Job> queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  size_t inFlight_ = 0;
  std::unordered_map<uint32_t, std::vector<Napi::ObjectReference>> held_;
};

Napi::Value CompressPagesSpans(const Napi::CallbackInfo& info) {
  Batch b = parseBatchAt(info, 0);
  size_t used = 0;
  std::string err = readCompress(b, &used);
  if (!err.empty()) throw Napi::Error::New(info.Env(), err);
  return Napi::Number::New(info.Env(), static_cast<double>(used));
}

// compressPages(method, src, pageSize, count, dst, sizes, detectZero) -> bytes used in dst.
Napi::Value CompressPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Batch b;
  b.method = info[0].As<Napi::Number>().Uint32Value();
  auto src = info[1].As<Napi::Buffer<unsigned char>>();
  b.pageSize = info[2].As<Napi::Number>().Uint32Value();
  b.count = info[3].As<Napi::Number>().Uint32Value();
  auto dst = info[4].As<Napi::Buffer<unsigned char>>();
  auto sizes = info[5].As<Napi::Uint32Array>();
  b.detectZero = info[6].ToBoolean();
  requireCodec(env, b.method);
  b.src = src.Data(); b.srcLen = src.Length();
  b.dst = dst.Data(); b.dstLen = dst.Length();
  b.sizes = sizes.Data();
  requireRoom(env, b, sizes.ElementLength());
  return Napi::Number::New(env, static_cast<double>(compressBatch(b)));
}

// decompressPage(method, src, dst) -> bytes written to dst; throws when the data is corrupt.
Napi::Value DecompressPage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t method = info[0].As<Napi::Number>().Uint32Value();
  auto src = info[1].As<Napi::Buffer<unsigned char>>();
  auto dst = info[2].As<Napi::Buffer<unsigned char>>();
  size_t out = dst.Length();
  requireCodec(env, method);
  switch (method) {
    case kZlib: {
      uLongf len = out;
      if (uncompress(dst.Data(), &len, src.Data(), src.Length()) != Z_OK) throw Napi::Error::New(env, "zlib: corrupt data");
      return Napi::Number::New(env, len);
    }
    case kLzo: {
      lzo_uint len = out;
      if (lzo.decompress(src.Data(), src.Length(), dst.Data(), &len, nullptr) != LZO_E_OK) throw Napi::Error::New(env, "lzo: corrupt data");
      return Napi::Number::New(env, len);
    }
    case kSnappy: {
      size_t len = out;
      if (snappy.uncompress(reinterpret_cast<const char*>(src.Data()), src.Length(), reinterpret_cast<char*>(dst.Data()), &len) != SNAPPY_OK)
        throw Napi::Error::New(env, "snappy: corrupt data");
      return Napi::Number::New(env, len);
    }
    case kZstd: {
      if (!scratch.zdctx) scratch.zdctx = zstd.createDCtx();
      size_t len = zstd.decompressDCtx(scratch.zdctx, dst.Data(), out, src.Data(), src.Length());
      if (zstd.isError(len)) throw Napi::Error::New(env, std::string("zstd: ") + zstd.getErrorName(len));
      return Napi::Number::New(env, len);
    }
  }
  throw Napi::RangeError::New(env, "unknown compression method");
}

// mapReads(fd): batches read from vmcore fd through mappings from now on (-1: none). Drops this
// thread's window (compressPagesSpans inline); the compression threads drop theirs on the next
// read, as the generation changed.
Napi::Value MapReads(const Napi::CallbackInfo& info) {
  gMapGeneration.fetch_add(1);
  gMappedFd.store(info[0].As<Napi::Number>().Int32Value());
  window.reset();
  return info.Env().Undefined();
}

// codecError(method) -> null when the codec can be used, else why not (its library is missing).
Napi::Value CodecError(const Napi::CallbackInfo& info) {
  uint32_t method = info[0].As<Napi::Number>().Uint32Value();
  if (!knownMethod(method)) throw Napi::RangeError::New(info.Env(), "unknown compression method");
  const std::string& err = codec_libs::codecError(method);
  return err.empty() ? info.Env().Null() : Napi::Value(Napi::String::New(info.Env(), err));
}

// codecLibrary(method) -> the shared library the codec is opened from, "" for none.
Napi::Value CodecLibrary(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), codec_libs::codecLibrary(info[0].As<Napi::Number>().Uint32Value()));
}

// Windows mapped by every thread so far.
Napi::Value MappedWindows(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(gWindows.load()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("codecError", Napi::Function::New(env, CodecError));
  exports.Set("codecLibrary", Napi::Function::New(env, CodecLibrary));
  exports.Set("compressPages", Napi::Function::New(env, CompressPages));
  exports.Set("compressPagesSpans", Napi::Function::New(env, CompressPagesSpans));
  exports.Set("CompressPool", CompressPool::Define(env));
  exports.Set("decompressPage", Napi::Function::New(env, DecompressPage));
  exports.Set("mapReads", Napi::Function::New(env, MapReads));
  exports.Set("mappedWindows", Napi::Function::New(env, MappedWindows));
  return exports;
}

}  // namespace

NODE_API_MODULE(codecs, Init)
