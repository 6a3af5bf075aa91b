{
  "targets": [{
    "target_name": "codecs",
    "sources": ["codecs.cc"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["-O2"],
    # libz static with its symbols bound inside the addon: Node exports its own (Chromium) zlib, and
    # a dynamic compress2 would bind to it and write bytes unlike makedumpfile -c. Debian's libzstd.a
    # is not PIC, so lzo/snappy/zstd stay shared (the initramfs ships them by DT_NEEDED).
    "libraries": ["-Wl,-Bstatic", "-lz", "-Wl,-Bdynamic", "-llzo2", "-lsnappy", "-lzstd", "-Wl,-Bsymbolic", "-Wl,--exclude-libs,libz.a"]
  }]
}
