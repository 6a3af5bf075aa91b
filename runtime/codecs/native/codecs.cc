// Page compression for kdump-compressed dumps, one call per BATCH of pages: a per-page call into
// node:zlib costs ~20 us, more than compressing the page. Each codec is exactly what makedumpfile
// writes and reads: zlib compress2 level 1 (Z_BEST_SPEED), lzo1x_1, raw snappy, zstd level 1.
// Thread-local scratch state so the same addon serves every worker thread.
#include <napi.h>
#include <lzo/lzo1x.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#include <cstring>
#include <vector>

namespace {

// makedumpfile diskdump_mod.h
constexpr uint32_t kZlib = 0x01, kLzo = 0x02, kSnappy = 0x04, kZstd = 0x20;

struct Scratch {
  std::vector<unsigned char> out;
  std::vector<unsigned char> lzoWork;
  ZSTD_CCtx* zcctx = nullptr;
  ZSTD_DCtx* zdctx = nullptr;
  ~Scratch() { if (zcctx) ZSTD_freeCCtx(zcctx); if (zdctx) ZSTD_freeDCtx(zdctx); }
};
thread_local Scratch scratch;

bool allZero(const unsigned char* p, size_t n) {
  // Word-wise: zero pages are common and this runs for every page.
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  for (size_t i = 0; i < n / 8; i++) if (w[i]) return false;
  for (size_t i = n & ~size_t(7); i < n; i++) if (p[i]) return false;
  return true;
}

size_t bound(uint32_t method, size_t n) {
  switch (method) {
    case kZlib: return compressBound(n);
    case kLzo: return n + n / 16 + 64 + 3;
    case kSnappy: return snappy_max_compressed_length(n);
    case kZstd: return ZSTD_compressBound(n);
    default: return n;
  }
}

// Returns the compressed size, or 0 when the codec failed (the caller stores the page raw).
size_t compressOne(uint32_t method, const unsigned char* src, size_t n, unsigned char* dst, size_t cap) {
  switch (method) {
    case kZlib: {
      uLongf len = cap;
      return compress2(dst, &len, src, n, Z_BEST_SPEED) == Z_OK ? len : 0;
    }
    case kLzo: {
      if (scratch.lzoWork.size() < LZO1X_1_MEM_COMPRESS) scratch.lzoWork.resize(LZO1X_1_MEM_COMPRESS);
      lzo_uint len = cap;
      return lzo1x_1_compress(src, n, dst, &len, scratch.lzoWork.data()) == LZO_E_OK ? len : 0;
    }
    case kSnappy: {
      size_t len = cap;
      return snappy_compress(reinterpret_cast<const char*>(src), n, reinterpret_cast<char*>(dst), &len) == SNAPPY_OK ? len : 0;
    }
    case kZstd: {
      if (!scratch.zcctx) scratch.zcctx = ZSTD_createCCtx();
      size_t len = ZSTD_compressCCtx(scratch.zcctx, dst, cap, src, n, 1);
      return ZSTD_isError(len) ? 0 : len;
    }
  }
  return 0;
}

// compressPages(method, src, pageSize, count, dst, sizes, detectZero) -> bytes used in dst.
// sizes[i] = stored length of page i: < pageSize compressed, == pageSize stored raw, 0 = all-zero
// page (only with detectZero; nothing stored). dst must hold count * pageSize bytes.
Napi::Value CompressPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t method = info[0].As<Napi::Number>().Uint32Value();
  auto src = info[1].As<Napi::Buffer<unsigned char>>();
  size_t pageSize = info[2].As<Napi::Number>().Uint32Value();
  size_t count = info[3].As<Napi::Number>().Uint32Value();
  auto dst = info[4].As<Napi::Buffer<unsigned char>>();
  auto sizes = info[5].As<Napi::Uint32Array>();
  bool detectZero = info[6].ToBoolean();
  if (method != 0 && method != kZlib && method != kLzo && method != kSnappy && method != kZstd)
    throw Napi::RangeError::New(env, "unknown compression method");
  if (src.Length() < pageSize * count || dst.Length() < pageSize * count || sizes.ElementLength() < count)
    throw Napi::RangeError::New(env, "buffers too small for the page count");
  size_t cap = bound(method, pageSize);
  if (scratch.out.size() < cap) scratch.out.resize(cap);
  size_t used = 0;
  for (size_t i = 0; i < count; i++) {
    const unsigned char* page = src.Data() + i * pageSize;
    if (detectZero && allZero(page, pageSize)) { sizes[i] = 0; continue; }
    size_t len = method ? compressOne(method, page, pageSize, scratch.out.data(), cap) : 0;
    if (len > 0 && len < pageSize) {
      memcpy(dst.Data() + used, scratch.out.data(), len);
    } else {
      len = pageSize;
      memcpy(dst.Data() + used, page, pageSize);
    }
    sizes[i] = static_cast<uint32_t>(len);
    used += len;
  }
  return Napi::Number::New(env, static_cast<double>(used));
}

// decompressPage(method, src, dst) -> bytes written to dst; throws when the data is corrupt.
Napi::Value DecompressPage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t method = info[0].As<Napi::Number>().Uint32Value();
  auto src = info[1].As<Napi::Buffer<unsigned char>>();
  auto dst = info[2].As<Napi::Buffer<unsigned char>>();
  size_t out = dst.Length();
  switch (method) {
    case kZlib: {
      uLongf len = out;
      if (uncompress(dst.Data(), &len, src.Data(), src.Length()) != Z_OK) throw Napi::Error::New(env, "zlib: corrupt data");
      return Napi::Number::New(env, len);
    }
    case kLzo: {
      lzo_uint len = out;
      if (lzo1x_decompress_safe(src.Data(), src.Length(), dst.Data(), &len, nullptr) != LZO_E_OK) throw Napi::Error::New(env, "lzo: corrupt data");
      return Napi::Number::New(env, len);
    }
    case kSnappy: {
      size_t len = out;
      if (snappy_uncompress(reinterpret_cast<const char*>(src.Data()), src.Length(), reinterpret_cast<char*>(dst.Data()), &len) != SNAPPY_OK)
        throw Napi::Error::New(env, "snappy: corrupt data");
      return Napi::Number::New(env, len);
    }
    case kZstd: {
      if (!scratch.zdctx) scratch.zdctx = ZSTD_createDCtx();
      size_t len = ZSTD_decompressDCtx(scratch.zdctx, dst.Data(), out, src.Data(), src.Length());
      if (ZSTD_isError(len)) throw Napi::Error::New(env, std::string("zstd: ") + ZSTD_getErrorName(len));
      return Napi::Number::New(env, len);
    }
  }
  throw Napi::RangeError::New(env, "unknown compression method");
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (lzo_init() != LZO_E_OK) throw Napi::Error::New(env, "lzo_init failed");
  exports.Set("compressPages", Napi::Function::New(env, CompressPages));
  exports.Set("decompressPage", Napi::Function::New(env, DecompressPage));
  return exports;
}

}  // namespace

NODE_API_MODULE(codecs, Init)
