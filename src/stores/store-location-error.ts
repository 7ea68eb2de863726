// A store location that cannot name a store: an unknown scheme, a malformed URL, an
// unreadable TLS file. Thrown at construction, before any I/O, so a CLI can call it a usage error.

export class StoreLocationError extends Error {
  override readonly name = 'StoreLocationError';
  constructor(
    message: string,
    readonly location: string,
  ) {
    super(message);
  }
}
