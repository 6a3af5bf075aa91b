{
  "targets": [{
    "target_name": "codecs",
    "sources": ["codecs.cc"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../../system/native"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["-O2"],
    # libdeflate (writes zlib pages) and libz (reads them) static with their symbols bound inside the
    # addon: Node exports its own (Chromium) zlib, and a dynamic uncompress would bind to it; a
    # static libdeflate is one library fewer in the initramfs. lzo, snappy and zstd are not linked:
    # codec-libs.h opens them when a dump asks for them (Debian's libzstd.a is not PIC anyway), so
    # a system without one of them still writes zlib; -ldl for dlopen (in libc since glibc 2.34).
    "libraries": ["-Wl,-Bstatic", "-ldeflate", "-lz", "-Wl,-Bdynamic", "-ldl", "-Wl,-Bsymbolic", "-Wl,--exclude-libs,libdeflate.a:libz.a"]
  }]
}
