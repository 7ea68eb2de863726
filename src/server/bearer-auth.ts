// Bearer tokens for `serve`: each token has a name (the actor the audit log records for what
// it changes) and roles (read: status, metrics and the control API's GETs; operate: the control
// API's actions, and read with it; ingest: OTLP in), compared in constant time. Tokens come from
// a file (one per line: TOKEN [ROLES] [NAME]) or an environment variable.
import { createHash, timingSafeEqual } from 'node:crypto';
import { basename } from 'node:path';

export type Role = 'read' | 'operate' | 'ingest';
export const ROLES: readonly Role[] = ['read', 'operate', 'ingest'];

export type AuthResult = 'ok' | 'missing' | 'invalid' | 'forbidden';

/** What check() found: the result, and the name of the token presented when it is known. */
export interface AuthCheck {
  readonly result: AuthResult;
  /** The token's name (its actor in the audit log); undefined unless the token is known. */
  readonly name: string | undefined;
}

export interface TokenGrant {
  readonly token: string;
  /** Default: every role. operate implies read. */
  readonly roles?: readonly Role[];
  /** Default: `token-N`, N counting from 1 in the order given. */
  readonly name?: string;
}

interface Grant {
  readonly digest: Buffer;
  readonly roles: ReadonlySet<Role>;
  readonly name: string;
}

const digest = (token: string) => createHash('sha256').update(token, 'utf8').digest();

/** Names go into audit entries and logs: short, printable, no spaces. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$/;

export class BearerAuth {
  private readonly grants: readonly Grant[];

  constructor(tokens: readonly TokenGrant[]) {
    if (tokens.length === 0) throw new RangeError('BearerAuth: give at least one token');
    const names = new Set<string>();
    const digests: Buffer[] = [];
    this.grants = tokens.map(({ token, roles, name }, index) => {
      if (token.length < 16) throw new RangeError(`BearerAuth: a token must be at least 16 characters (got ${token.length}); generate one with: openssl rand -hex 32`);
      const granted = name ?? `token-${index + 1}`;
      if (!NAME.test(granted)) throw new RangeError(`BearerAuth: token name "${granted}" is not a name; use letters, digits and . _ @ : - (up to 64), such as ci-deployer`);
      if (names.has(granted)) throw new RangeError(`BearerAuth: two tokens are named "${granted}"; give each its own name, the audit log tells them apart by it`);
      names.add(granted);
      const d = digest(token);
      if (digests.some((other) => other.equals(d))) throw new RangeError(`BearerAuth: the token named "${granted}" is listed twice; give each person or system its own token`);
      digests.push(d);
      const set = new Set<Role>(roles ?? ROLES);
      if (set.has('operate')) set.add('read');
      return { digest: d, roles: set, name: granted };
    });
  }

  /**
   * Reads a token file: one token per line, optionally followed by its roles separated by
   * commas (or `all`) and a name (`a1b2... operate alice`); blank lines and lines starting
   * with # are skipped. A token without a name is named after its place: `tokens:3`.
   */
  static parse(text: string, source: string): BearerAuth {
    const tokens: TokenGrant[] = [];
    const at = (line: number) => `${source}:${line}`;
    text.split(/\r?\n/).forEach((raw, index) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const [token, rolesText, name, ...rest] = line.split(/\s+/);
      if (rest.length > 0) throw new RangeError(`${at(index + 1)}: expected "TOKEN [ROLE,ROLE] [NAME]", got ${rest.length + 3} words`);
      let roles: Role[] | undefined;
      if (rolesText !== undefined && rolesText !== 'all') {
        roles = rolesText.split(',').map((r) => {
          if (!(ROLES as readonly string[]).includes(r)) throw new RangeError(`${at(index + 1)}: unknown role "${r}"; roles are ${ROLES.join(', ')} (or all), separated by commas`);
          return r as Role;
        });
      }
      if ((token as string).length < 16) throw new RangeError(`${at(index + 1)}: a token must be at least 16 characters (got ${(token as string).length}); generate one with: openssl rand -hex 32`);
      if (name !== undefined && !NAME.test(name)) throw new RangeError(`${at(index + 1)}: token name "${name}" is not a name; use letters, digits and . _ @ : - (up to 64), such as ci-deployer`);
      tokens.push({ token: token as string, roles, name: name ?? `${basename(source)}:${index + 1}` });
    });
    if (tokens.length === 0) throw new RangeError(`${source}: no tokens in the file`);
    try {
      return new BearerAuth(tokens);
    } catch (err) {
      throw new RangeError(`${source}: ${(err as Error).message.replace(/^BearerAuth: /, '')}`, { cause: err });
    }
  }

  /** Checks an Authorization header (`Bearer TOKEN`) for a role; every token is compared, so timing says nothing. */
  check(header: string | undefined, role: Role): AuthCheck {
    if (header === undefined || header === '') return { result: 'missing', name: undefined };
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) return { result: 'invalid', name: undefined };
    const presented = digest(match[1] as string);
    let found: Grant | undefined;
    for (const grant of this.grants) if (timingSafeEqual(grant.digest, presented)) found = grant;
    if (found === undefined) return { result: 'invalid', name: undefined };
    return { result: found.roles.has(role) ? 'ok' : 'forbidden', name: found.name };
  }
}

/** What a refused request is told, the same on every route (callers may add a hint). */
export function refusalMessage(result: Exclude<AuthResult, 'ok'>, role: Role): string {
  if (result === 'forbidden') return `this token lacks the ${role} role`;
  return result === 'missing' ? 'send authorization: Bearer TOKEN' : 'the bearer token is not known';
}
