{
  # ssh2's optional binding (OpenSSL AES-GCM, ChaCha20-Poly1305 and generic ciphers kept across
  # packets), compiled from the pinned ssh2's own source: its install script never runs here
  # (.npmrc ignore-scripts) and its JavaScript fallback makes a new cipher per packet, ~2x the CPU.
  # OpenSSL comes from the Node executable, which links it statically and exports its symbols.
  "targets": [{
    "target_name": "sshcrypto",
    "sources": ["../../../node_modules/ssh2/lib/protocol/crypto/src/binding.cc"],
    "include_dirs": ["<!(node -e \"require('nan')\")"],
    "cflags": ["-O3"],
    "defines": ["OPENSSL_API_COMPAT=0x10100000L", "REAL_OPENSSL_MAJOR=3"]
  }]
}
