// A protobuf wire-format reader over one buffer: varints, fixed64/fixed32, length-delimited
// fields and skipping. It never recurses (skipping a nested message is one jump), so no
// payload, however deeply nested, can exhaust the stack; malformed input throws ProtoError.

export class ProtoError extends Error {
  override readonly name = 'ProtoError';
}

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LENGTH = 2;
export const WIRE_FIXED32 = 5;

const TWO_32 = 4294967296;

// Buffer's own hexSlice/utf8Slice skip toString's encoding dispatch, a third of the cost of a
// short id; they are undocumented, so toString stays the fallback.
interface DirectSlices {
  hexSlice?: (this: Buffer, start: number, end: number) => string;
  utf8Slice?: (this: Buffer, start: number, end: number) => string;
}
const direct = Buffer.prototype as unknown as DirectSlices;
const hexSlice = typeof direct.hexSlice === 'function' ? direct.hexSlice : function (this: Buffer, start: number, end: number) { return this.toString('hex', start, end); };
const utf8Slice = typeof direct.utf8Slice === 'function' ? direct.utf8Slice : function (this: Buffer, start: number, end: number) { return this.toString('utf8', start, end); };

/** A cursor over a buffer; `end` bounds the current message so nested reads cannot overrun it. */
export class ProtoReader {
  buf: Buffer;
  pos: number;
  end: number;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  /** Reads a varint as a number; values past 2^53 lose precision, which no field read here needs. */
  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    let result = 0;
    let shift = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= this.end) throw new ProtoError(`truncated varint at byte ${pos}`);
      const byte = buf[pos++] as number;
      result += (byte & 0x7f) * shift;
      if (byte < 0x80) {
        this.pos = pos;
        return result;
      }
      shift *= 128;
    }
    throw new ProtoError(`varint longer than 10 bytes at byte ${this.pos}`);
  }

  /** A field tag: field number * 8 + wire type. */
  tag(): number {
    // Tags of the fields read here fit one or two bytes; the general path handles the rest.
    const pos = this.pos;
    if (pos < this.end) {
      const byte = this.buf[pos] as number;
      if (byte < 0x80) {
        this.pos = pos + 1;
        return byte;
      }
    }
    return this.varint();
  }

  /** The end of a length-delimited field starting here, checked against the enclosing message. */
  lengthEnd(): number {
    const length = this.varint();
    const end = this.pos + length;
    if (end > this.end) throw new ProtoError(`field of ${length} bytes at byte ${this.pos} runs past its message (ends at ${this.end})`);
    return end;
  }

  /** fixed64 as a double (nanosecond times keep ~256 ns precision, plenty for milliseconds). */
  fixed64(): number {
    const pos = this.pos;
    if (pos + 8 > this.end) throw new ProtoError(`truncated fixed64 at byte ${pos}`);
    const lo = this.buf.readUInt32LE(pos);
    const hi = this.buf.readUInt32LE(pos + 4);
    this.pos = pos + 8;
    return hi * TWO_32 + lo;
  }

  /** fixed64 split in halves, for exact differences of nanosecond times. */
  fixed64Halves(into: Float64Array, at: number): void {
    const pos = this.pos;
    if (pos + 8 > this.end) throw new ProtoError(`truncated fixed64 at byte ${pos}`);
    into[at] = this.buf.readUInt32LE(pos + 4);
    into[at + 1] = this.buf.readUInt32LE(pos);
    this.pos = pos + 8;
  }

  fixed32(): number {
    const pos = this.pos;
    if (pos + 4 > this.end) throw new ProtoError(`truncated fixed32 at byte ${pos}`);
    this.pos = pos + 4;
    return this.buf.readUInt32LE(pos);
  }

  double(): number {
    const pos = this.pos;
    if (pos + 8 > this.end) throw new ProtoError(`truncated double at byte ${pos}`);
    this.pos = pos + 8;
    return this.buf.readDoubleLE(pos);
  }

  /** Skips one field of the given wire type. */
  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        if (this.pos + 8 > this.end) throw new ProtoError(`truncated fixed64 at byte ${this.pos}`);
        this.pos += 8;
        return;
      case WIRE_LENGTH:
        this.pos = this.lengthEnd();
        return;
      case WIRE_FIXED32:
        if (this.pos + 4 > this.end) throw new ProtoError(`truncated fixed32 at byte ${this.pos}`);
        this.pos += 4;
        return;
      default:
        throw new ProtoError(`wire type ${wireType} at byte ${this.pos} is not one OTLP uses`);
    }
  }

  /** Whether bytes [start, end) equal `expected` (compared without making a string). */
  equals(start: number, end: number, expected: Buffer): boolean {
    const length = expected.length;
    if (end - start !== length) return false;
    const buf = this.buf;
    for (let i = 0; i < length; i++) if (buf[start + i] !== expected[i]) return false;
    return true;
  }

  utf8(start: number, end: number): string {
    return utf8Slice.call(this.buf, start, end);
  }

  hex(start: number, end: number): string {
    return hexSlice.call(this.buf, start, end);
  }
}
