// The writers' view of a DumpSink: "put these bytes at this offset". Positional sinks take the
// write as is; stream sinks get it as a flattened record (makedumpfile -F), so every writer
// produces both a dump file and its flattened form from the same code.
import { LastwordError } from '../errors.ts';
import type { DumpSink } from '../targets/sink.ts';
import { encodeDataHeader, encodeEndMarker, encodeFlatHeader } from './flattened.ts';

export class DumpOutput {
  readonly sink: DumpSink;
  readonly flattened: boolean;
  bytesWritten = 0;
  private started = false;

  /** `streamStarted`: the flattened header is already in the stream (continuing another writer's stream). */
  constructor(sink: DumpSink, { streamStarted = false }: { streamStarted?: boolean } = {}) {
    this.sink = sink;
    this.flattened = sink.kind === 'stream';
    this.started = streamStarted;
  }

  async write(buf: Buffer, offset: number): Promise<void> {
    if (buf.length === 0) return;
    try {
      if (this.sink.kind === 'positional') {
        await this.sink.pwrite(buf, offset);
      } else {
        if (!this.started) {
          await this.sink.write(encodeFlatHeader());
          this.started = true;
        }
        // Two writes, no copy: a stream sink resolves once it is done with the buffer.
        await this.sink.write(encodeDataHeader(offset, buf.length));
        await this.sink.write(buf);
      }
    } catch (err) {
      throw asTargetError(err, offset);
    }
    this.bytesWritten += buf.length;
  }

  /** Ends the flattened stream with its end marker, then closes the sink. */
  async close(): Promise<void> {
    try {
      if (this.sink.kind === 'stream') {
        if (!this.started) await this.sink.write(encodeFlatHeader());
        await this.sink.write(encodeEndMarker());
      }
      await this.sink.close();
    } catch (err) {
      throw asTargetError(err, -1);
    }
  }

  async abort(): Promise<void> {
    await this.sink.abort();
  }

  /**
   * After a failure: where the sink allows it (a file), puts `flagged` — the dump's header marked
   * incomplete, as makedumpfile's check_and_modify_headers does — at offset 0, then aborts the sink.
   * Never throws: the failure that got here is what the caller must see.
   */
  async abortIncomplete(flagged: Buffer | undefined): Promise<void> {
    try {
      if (flagged && this.sink.kind === 'positional') await this.sink.pwrite(flagged, 0);
    } catch { /* see above */ }
    try {
      await this.sink.abort();
    } catch { /* same */ }
  }
}

/** Sinks should reject with LastwordErrors; plain errno errors are mapped here so the writer's caller sees one family. */
function asTargetError(err: unknown, offset: number): unknown {
  if (err instanceof LastwordError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const where = offset >= 0 ? { offset } : {};
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') {
    return new LastwordError('ETARGET_FULL', `dump target is full (${code}) writing at offset 0x${Math.max(offset, 0).toString(16)}`, { where, cause: err });
  }
  return new LastwordError('ETARGET_IO', `cannot write the dump: ${(err as Error).message}`, { where, cause: err });
}
