// Construction-time checks shared by the guardian's data structures: misconfiguration throws
// at once and quotes the bad value, so the data path never has to.

/** A value as the user wrote it: strings quoted, everything else as String() shows it. */
export function quoteValue(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

export function requirePositiveInteger(owner: string, name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${owner}: ${name} must be a positive integer, got ${quoteValue(value)}`);
  }
  return value;
}
