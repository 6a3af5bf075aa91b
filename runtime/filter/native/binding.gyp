{
  "targets": [{
    "target_name": "filter",
    "sources": ["page-walk.cc"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../../system/native"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["-O2"]
  }]
}
