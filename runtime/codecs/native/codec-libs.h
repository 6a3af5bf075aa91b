// The libraries behind lzo, snappy and zstd, found at run time (dlopen) instead of linked.
// Linked, they were DT_NEEDED entries of the addon: on a system without one of them (Debian 12
// with kdump-tools and makedumpfile installed has liblzo2 and libzstd but no libsnappy) the whole
// addon failed to load, zlib included, so lastword could write no compressed dump at all. Now
// each is opened on first use, a missing one is reported for its codec alone (codecError), and
// the caller chooses another codec. zlib is linked into the addon (libdeflate, libz).
//
// zstd comes from the executable when it has it: the pinned Node exports its own libzstd, which is
// what the linked addon's calls bound to all along (the executable's symbols come first in the
// lookup), so its output is unchanged; libzstd.so.1 only when the symbols are not there.
#pragma once
#include <dlfcn.h>
#include <lzo/lzo1x.h>
#include <snappy-c.h>
#include <zstd.h>
#include <mutex>
#include <string>

namespace codec_libs {

struct Lzo {
  decltype(&__lzo_init_v2) init = nullptr;
  decltype(&lzo1x_1_compress) compress = nullptr;
  decltype(&lzo1x_decompress_safe) decompress = nullptr;
};
struct Snappy {
  decltype(&snappy_compress) compress = nullptr;
  decltype(&snappy_uncompress) uncompress = nullptr;
  decltype(&snappy_max_compressed_length) maxLength = nullptr;
};
struct Zstd {
  decltype(&ZSTD_createCCtx) createCCtx = nullptr;
  decltype(&ZSTD_freeCCtx) freeCCtx = nullptr;
  decltype(&ZSTD_compressCCtx) compressCCtx = nullptr;
  decltype(&ZSTD_createDCtx) createDCtx = nullptr;
  decltype(&ZSTD_freeDCtx) freeDCtx = nullptr;
  decltype(&ZSTD_decompressDCtx) decompressDCtx = nullptr;
  decltype(&ZSTD_isError) isError = nullptr;
  decltype(&ZSTD_getErrorName) getErrorName = nullptr;
};

inline Lzo lzo;
inline Snappy snappy;
inline Zstd zstd;

constexpr const char* kLzoLibrary = "liblzo2.so.2";
constexpr const char* kSnappyLibrary = "libsnappy.so.1";
constexpr const char* kZstdLibrary = "libzstd.so.1";

// One library's symbols into `fields`; "" or why not (dlerror's text, which names the file).
template <typename F>
std::string resolve(void* handle, F&& fields) {
  std::string missing;
  auto sym = [&](auto& slot, const char* name) {
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(dlsym(handle, name));
    if (!slot && missing.empty()) missing = name;
  };
  fields(sym);
  return missing.empty() ? "" : std::string("no symbol ") + missing;
}

// dlopen(soname) and its symbols into `fields`; "" or why not.
template <typename F>
std::string openLibrary(const char* soname, F&& fields) {
  void* h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!h) return dlerror();
  std::string err = resolve(h, fields);
  return err.empty() ? "" : std::string(soname) + ": " + err;
}

inline std::string openLzo() {
  std::string err = openLibrary(kLzoLibrary, [](auto sym) {
    sym(lzo.init, "__lzo_init_v2");
    sym(lzo.compress, "lzo1x_1_compress");
    sym(lzo.decompress, "lzo1x_decompress_safe");
  });
  if (!err.empty()) return err;
  // lzo_init() of lzoconf.h, through the pointer
  if (lzo.init(LZO_VERSION, int(sizeof(short)), int(sizeof(int)), int(sizeof(long)), int(sizeof(lzo_uint32_t)),
               int(sizeof(lzo_uint)), int(lzo_sizeof_dict_t), int(sizeof(char*)), int(sizeof(lzo_voidp)),
               int(sizeof(lzo_callback_t))) != LZO_E_OK) {
    return std::string(kLzoLibrary) + ": lzo_init failed";
  }
  return "";
}

inline std::string openSnappy() {
  return openLibrary(kSnappyLibrary, [](auto sym) {
    sym(snappy.compress, "snappy_compress");
    sym(snappy.uncompress, "snappy_uncompress");
    sym(snappy.maxLength, "snappy_max_compressed_length");
  });
}

inline std::string openZstd() {
  auto fields = [](auto sym) {
    sym(zstd.createCCtx, "ZSTD_createCCtx");
    sym(zstd.freeCCtx, "ZSTD_freeCCtx");
    sym(zstd.compressCCtx, "ZSTD_compressCCtx");
    sym(zstd.createDCtx, "ZSTD_createDCtx");
    sym(zstd.freeDCtx, "ZSTD_freeDCtx");
    sym(zstd.decompressDCtx, "ZSTD_decompressDCtx");
    sym(zstd.isError, "ZSTD_isError");
    sym(zstd.getErrorName, "ZSTD_getErrorName");
  };
  if (resolve(RTLD_DEFAULT, fields).empty()) return "";
  return openLibrary(kZstdLibrary, fields);
}

// "" when the codec (makedumpfile's flag: 0x02 lzo, 0x04 snappy, 0x20 zstd; anything else needs no
// library) can be used, else why not. Opens the library once; thread-safe.
inline const std::string& codecError(uint32_t method) {
  static std::once_flag lzoOnce, snappyOnce, zstdOnce;
  static std::string lzoErr, snappyErr, zstdErr;
  static const std::string none;
  switch (method) {
    case 0x02: std::call_once(lzoOnce, [] { lzoErr = openLzo(); }); return lzoErr;
    case 0x04: std::call_once(snappyOnce, [] { snappyErr = openSnappy(); }); return snappyErr;
    case 0x20: std::call_once(zstdOnce, [] { zstdErr = openZstd(); }); return zstdErr;
    default: return none;
  }
}

// The shared library a codec is opened from (the initramfs builder ships it), "" for none.
inline const char* codecLibrary(uint32_t method) {
  switch (method) {
    case 0x02: return kLzoLibrary;
    case 0x04: return kSnappyLibrary;
    case 0x20: return kZstdLibrary;
    default: return "";
  }
}

}  // namespace codec_libs
