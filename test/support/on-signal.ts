// Clean-up that also runs when a test process is stopped by SIGTERM, SIGINT or SIGHUP (a CI run
// cancelled): t.after hooks do not run then, and what a test leaves outside its process (network
// namespaces with detached servers, QEMU disks under /tmp) would stay behind.

const hooks = new Set<() => void>();
let installed = false;

/**
 * Runs `fn` if the process is stopped by one of those signals, before it dies of the signal as it
 * would have. Returns the function that unregisters `fn` (call it once the test cleaned up).
 */
export function onSignal(fn: () => void): () => void {
  if (!installed) {
    installed = true;
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      process.once(sig, () => {
        for (const hook of [...hooks]) {
          try { hook(); } catch { /* the others still run */ }
        }
        process.kill(process.pid, sig);
      });
    }
  }
  hooks.add(fn);
  return () => { hooks.delete(fn); };
}
