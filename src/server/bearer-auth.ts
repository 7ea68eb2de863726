// Bearer tokens for `serve`: each token has roles (read: status and metrics; ingest: OTLP in;
// operate: reserved for the control API), compared in constant time. Tokens come from a file
// (one per line: the token, then optionally its roles) or an environment variable.
import { createHash, timingSafeEqual } from 'node:crypto';

export type Role = 'read' | 'operate' | 'ingest';
export const ROLES: readonly Role[] = ['read', 'operate', 'ingest'];

export type AuthResult = 'ok' | 'missing' | 'invalid' | 'forbidden';

interface Grant {
  readonly digest: Buffer;
  readonly roles: ReadonlySet<Role>;
}

const digest = (token: string) => createHash('sha256').update(token, 'utf8').digest();

export class BearerAuth {
  private readonly grants: readonly Grant[];

  constructor(tokens: readonly { readonly token: string; readonly roles?: readonly Role[] }[]) {
    if (tokens.length === 0) throw new RangeError('BearerAuth: give at least one token');
    this.grants = tokens.map(({ token, roles }) => {
      if (token.length < 16) throw new RangeError(`BearerAuth: a token must be at least 16 characters (got ${token.length}); generate one with: openssl rand -hex 32`);
      return { digest: digest(token), roles: new Set(roles ?? ROLES) };
    });
  }

  /**
   * Reads a token file: one token per line, optionally followed by its roles separated by
   * commas (`a1b2... ingest,read`); blank lines and lines starting with # are skipped.
   */
  static parse(text: string, source: string): BearerAuth {
    const tokens: { token: string; roles?: Role[] }[] = [];
    text.split(/\r?\n/).forEach((raw, index) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const [token, rolesText, ...rest] = line.split(/\s+/);
      if (rest.length > 0) throw new RangeError(`${source}:${index + 1}: expected "TOKEN [ROLE,ROLE]", got ${rest.length + 2} words`);
      let roles: Role[] | undefined;
      if (rolesText !== undefined) {
        roles = rolesText.split(',').map((r) => {
          if (!(ROLES as readonly string[]).includes(r)) throw new RangeError(`${source}:${index + 1}: unknown role "${r}"; roles are ${ROLES.join(', ')}`);
          return r as Role;
        });
      }
      tokens.push({ token: token as string, roles });
    });
    if (tokens.length === 0) throw new RangeError(`${source}: no tokens in the file`);
    return new BearerAuth(tokens);
  }

  /** Checks an Authorization header (`Bearer TOKEN`) for a role; every token is compared, so timing says nothing. */
  check(header: string | undefined, role: Role): AuthResult {
    if (header === undefined || header === '') return 'missing';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) return 'invalid';
    const presented = digest(match[1] as string);
    let found: Grant | undefined;
    for (const grant of this.grants) if (timingSafeEqual(grant.digest, presented)) found = grant;
    if (found === undefined) return 'invalid';
    return found.roles.has(role) ? 'ok' : 'forbidden';
  }
}
