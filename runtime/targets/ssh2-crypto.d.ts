// The one export of ssh2's internal crypto module lastword reads (@types/ssh2 does not declare it).
declare module 'ssh2/lib/protocol/crypto.js' {
  const crypto: { readonly bindingAvailable: boolean };
  export default crypto;
}
