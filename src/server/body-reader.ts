// Request bodies for OTLP ingest, read with limits: the declared Content-Length, the bytes on
// the wire and the decompressed bytes (as gzip or deflate stream, so a compression bomb stops
// at the limit) each capped, and every buffered byte counted against one budget shared by all
// requests in flight, so many large bodies at once cannot exhaust memory.
import type { IncomingMessage } from 'node:http';
import { createGunzip, createInflate, type Gunzip, type Inflate } from 'node:zlib';

export type BodyFailure =
  | { readonly status: 413; readonly reason: 'too_large'; readonly message: string }
  | { readonly status: 415; readonly reason: 'unsupported_media_type'; readonly message: string }
  | { readonly status: 400; readonly reason: 'malformed'; readonly message: string }
  | { readonly status: 503; readonly reason: 'busy'; readonly message: string };

export class BodyError extends Error {
  override readonly name = 'BodyError';
  constructor(readonly failure: BodyFailure) {
    super(failure.message);
  }
}

/** Bytes buffered by all requests at once, taken as they arrive and given back when done. */
export class MemoryBudget {
  private used = 0;

  constructor(readonly limitBytes: number) {}

  get inUse(): number {
    return this.used;
  }

  take(bytes: number): boolean {
    if (this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_CONCURRENT_BODY_BYTES = 64 * 1024 * 1024;

function mib(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}

/** A body and the budget it holds; call release() once the body is no longer needed. */
export interface Body {
  readonly bytes: Buffer;
  release(): void;
}

/**
 * Reads the whole body of `request`, decompressing per its Content-Encoding. Rejects with a
 * BodyError for what the client must change (too large, unknown encoding, corrupt stream,
 * server busy); the request is left draining so the client gets the answer, not a reset.
 */
export function readBody(request: IncomingMessage, maxBodyBytes: number, budget: MemoryBudget): Promise<Body> {
  const encoding = (request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  let decoder: Gunzip | Inflate | undefined;
  if (encoding === 'gzip' || encoding === 'x-gzip') decoder = createGunzip();
  else if (encoding === 'deflate') decoder = createInflate();
  else if (encoding !== 'identity' && encoding !== '') {
    return Promise.reject(new BodyError({ status: 415, reason: 'unsupported_media_type', message: `Content-Encoding ${encoding} is not accepted; send gzip, deflate or none` }));
  }
  const declared = Number(request.headers['content-length']);
  if (declared > maxBodyBytes) {
    request.resume();
    return Promise.reject(new BodyError({ status: 413, reason: 'too_large', message: `body of ${declared} bytes is over the limit of ${mib(maxBodyBytes)} (serve --max-body-bytes)` }));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let taken = 0;
    let wire = 0;
    let done = false;
    const fail = (error: BodyError) => {
      if (done) return;
      done = true;
      budget.give(taken);
      taken = 0;
      chunks.length = 0;
      decoder?.destroy();
      // Keep reading (and dropping) what the client still sends, so it reads our answer.
      request.unpipe();
      request.removeAllListeners('data');
      request.resume();
      reject(error);
    };
    const keep = (chunk: Buffer) => {
      if (done) return;
      if (taken + chunk.length > maxBodyBytes) {
        fail(new BodyError({ status: 413, reason: 'too_large', message: `body${decoder === undefined ? '' : ` decompressed from ${encoding}`} is over the limit of ${mib(maxBodyBytes)} (serve --max-body-bytes)` }));
        return;
      }
      if (!budget.take(chunk.length)) {
        fail(new BodyError({ status: 503, reason: 'busy', message: `too many request bodies in flight (${mib(budget.limitBytes)} in all); retry later` }));
        return;
      }
      taken += chunk.length;
      chunks.push(chunk);
    };
    const finish = () => {
      if (done) return;
      done = true;
      const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, taken);
      let held = taken;
      resolve({
        bytes,
        release: () => {
          budget.give(held);
          held = 0;
        },
      });
    };
    request.on('data', (chunk: Buffer) => {
      if (done) return;
      wire += chunk.length;
      if (wire > maxBodyBytes) {
        fail(new BodyError({ status: 413, reason: 'too_large', message: `body is over the limit of ${mib(maxBodyBytes)} (serve --max-body-bytes)` }));
        return;
      }
      if (decoder === undefined) keep(chunk);
      else if (!decoder.write(chunk)) {
        request.pause();
        decoder.once('drain', () => request.resume());
      }
    });
    request.on('end', () => (decoder === undefined ? finish() : decoder.end()));
    request.on('error', (err) => fail(new BodyError({ status: 400, reason: 'malformed', message: `request body: ${err.message}` })));
    if (decoder !== undefined) {
      decoder.on('data', keep);
      decoder.on('end', finish);
      decoder.on('error', (err) => fail(new BodyError({ status: 400, reason: 'malformed', message: `body is not valid ${encoding}: ${err.message}` })));
    }
  });
}
