// MurmurHash3 x86_32 over the UTF-8 bytes of a string, streamed so a flag key's bytes are
// hashed once and each evaluation only hashes the targeting key (flagd hashes
// `flagKey + targetingKey`). UTF-8 is encoded inline: no allocation per call.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** Hash state after some bytes: the running hash, the pending partial block and the length. */
export interface Murmur3State {
  h: number;
  k: number;
  pending: number;
  length: number;
}

const EMPTY: Readonly<Murmur3State> = { h: 0, k: 0, pending: 0, length: 0 };
// Reused by murmur3Finish so the hot path allocates nothing; nothing re-enters between
// the write and the read.
const scratch: Murmur3State = { h: 0, k: 0, pending: 0, length: 0 };

/** The state after hashing `prefix` from seed 0; pass it to `murmur3Finish` with the rest. */
export function murmur3Prefix(prefix: string): Readonly<Murmur3State> {
  return murmur3Continue(EMPTY, prefix, { h: 0, k: 0, pending: 0, length: 0 });
}

function murmur3Continue(state: Readonly<Murmur3State>, s: string, out: Murmur3State): Murmur3State {
  let h = state.h;
  let k = state.k;
  let pending = state.pending;
  let length = state.length;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    // Four ASCII characters at a block boundary are one whole block: most keys and ids
    // are ASCII, and this takes them four at a time instead of byte by byte.
    if (pending === 0 && i + 3 < n) {
      const c0 = s.charCodeAt(i);
      const c1 = s.charCodeAt(i + 1);
      const c2 = s.charCodeAt(i + 2);
      const c3 = s.charCodeAt(i + 3);
      if ((c0 | c1 | c2 | c3) < 0x80) {
        let block = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24);
        block = Math.imul(block, C1);
        block = (block << 15) | (block >>> 17);
        block = Math.imul(block, C2);
        h ^= block;
        h = (h << 13) | (h >>> 19);
        h = (Math.imul(h, 5) + 0xe6546b64) | 0;
        length += 4;
        i += 3;
        continue;
      }
    }
    let c = s.charCodeAt(i);
    let packed: number;
    let count: number;
    if (c < 0x80) {
      packed = c;
      count = 1;
    } else if (c < 0x800) {
      packed = (0xc0 | (c >> 6)) | ((0x80 | (c & 0x3f)) << 8);
      count = 2;
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const next = i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
          i++;
        } else {
          c = 0xfffd; // a lone surrogate encodes as U+FFFD, as TextEncoder does
        }
      }
      if (c < 0x10000) {
        packed = (0xe0 | (c >> 12)) | ((0x80 | ((c >> 6) & 0x3f)) << 8) | ((0x80 | (c & 0x3f)) << 16);
        count = 3;
      } else {
        packed =
          (0xf0 | (c >> 18)) |
          ((0x80 | ((c >> 12) & 0x3f)) << 8) |
          ((0x80 | ((c >> 6) & 0x3f)) << 16) |
          ((0x80 | (c & 0x3f)) << 24);
        count = 4;
      }
    }
    for (let b = 0; b < count; b++) {
      k |= ((packed >>> (b * 8)) & 0xff) << (pending * 8);
      pending++;
      if (pending === 4) {
        k = Math.imul(k, C1);
        k = (k << 15) | (k >>> 17);
        k = Math.imul(k, C2);
        h ^= k;
        h = (h << 13) | (h >>> 19);
        h = (Math.imul(h, 5) + 0xe6546b64) | 0;
        k = 0;
        pending = 0;
      }
    }
    length += count;
  }
  out.h = h;
  out.k = k;
  out.pending = pending;
  out.length = length;
  return out;
}

/** Finishes the hash of `prefix + suffix` given the prefix state; returns an unsigned 32-bit value. */
export function murmur3Finish(state: Readonly<Murmur3State>, suffix: string): number {
  const s = suffix.length === 0 ? state : murmur3Continue(state, suffix, scratch);
  let h = s.h;
  if (s.pending > 0) {
    let k = Math.imul(s.k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= s.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 x86_32, seed 0, of the UTF-8 bytes of `s`. */
export function murmur3Utf8(s: string): number {
  return murmur3Finish(EMPTY, s);
}
