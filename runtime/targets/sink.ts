// Where a dump file's bytes go. A target hands the dump writer one of these. Files (local disk,
// NFS) and SFTP take writes at offsets; a raw device, an ssh `dd` pipe or stdout take a byte
// stream, which the writer fills with makedumpfile's flattened format (dumpfile/flattened.ts).

export interface PositionalSink {
  readonly kind: 'positional';
  /** Writes `buf` at absolute offset `offset` of the dump file. Rejects with a LastwordError (ETARGET_FULL, ETARGET_IO...). */
  pwrite(buf: Buffer, offset: number): Promise<void>;
  /** Flushes to stable storage and closes. */
  close(): Promise<void>;
  /** Closes without the guarantees of close(), after a failure. */
  abort(): Promise<void>;
}

export interface StreamSink {
  readonly kind: 'stream';
  /** Appends bytes; resolves when the sink accepted them (back-pressure). */
  write(buf: Buffer): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

export type DumpSink = PositionalSink | StreamSink;
