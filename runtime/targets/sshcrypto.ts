// ssh2's native crypto binding, built by `npm run build:native` from ssh2's own source
// (runtime/targets/native/binding.gyp) as build/native/sshcrypto.node. Without it ssh2 falls back
// to JavaScript that creates a cipher per packet and spends about twice OpenSSH's CPU.
// ssh2 loads it with `require('./crypto/build/Release/sshcrypto.node')` inside a try/catch
// (node_modules/ssh2/lib/protocol/crypto.js), a path that never exists here:
//  - in a checkout, the resolve hook below points that require at build/native/sshcrypto.node;
//  - in the single executable, the esbuild plugin of initramfs/executable/build.ts replaces it
//    with sshcryptoBinding(), which extracts the SEA asset like lastword's own addons.
// Import this module before ssh2 (runtime/targets/ssh.ts does, first).
import { registerHooks } from 'node:module';
import * as sea from 'node:sea';
import { pathToFileURL } from 'node:url';
import { loadNative, nativeAddonPath } from '../system/native-loader.ts';

/** The specifier ssh2's lib/protocol/crypto.js requires its binding with. */
export const SSH2_BINDING_SPECIFIER = './crypto/build/Release/sshcrypto.node';

if (!sea.isSea()) {
  registerHooks({
    resolve(specifier, context, next) {
      if (specifier === SSH2_BINDING_SPECIFIER && context.parentURL?.endsWith('/ssh2/lib/protocol/crypto.js')) {
        return { url: pathToFileURL(nativeAddonPath('sshcrypto')).href, shortCircuit: true };
      }
      return next(specifier, context);
    },
  });
}

/** The binding for the single executable's bundle (the SEA asset sshcrypto.node). */
export function sshcryptoBinding(): unknown {
  return loadNative('sshcrypto');
}
