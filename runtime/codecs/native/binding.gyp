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
    # static libdeflate is one library fewer in the initramfs. Debian's libzstd.a is not PIC, so
    # lzo/snappy/zstd stay shared (the initramfs ships them by DT_NEEDED).
    "libraries": ["-Wl,-Bstatic", "-ldeflate", "-lz", "-Wl,-Bdynamic", "-llzo2", "-lsnappy", "-lzstd", "-Wl,-Bsymbolic", "-Wl,--exclude-libs,libdeflate.a:libz.a"]
  }]
}
