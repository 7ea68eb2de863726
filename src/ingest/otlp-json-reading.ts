// Reading OTLP/JSON bodies field by field, shared by the traces, logs and metrics decoders:
// every refusal names the path of the field and what was expected there.
import { OtlpPayloadError } from './otlp-records.js';

export type Json = Record<string, unknown>;

/** Refuses the payload at `where`, showing a short form of what was found. */
export function fail(where: string, what: string, value: unknown): never {
  const shown = typeof value === 'string' ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value) : typeof value === 'object' ? (Array.isArray(value) ? 'an array' : value === null ? 'null' : 'an object') : typeof value === 'number' || typeof value === 'boolean' ? String(value) : 'nothing';
  throw new OtlpPayloadError(`${where}: expected ${what}, got ${shown}`);
}

/** `parent[key]` as an array; absent or null is empty. */
export function list(parent: Json, key: string, where: string): readonly unknown[] {
  const value = parent[key];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) fail(`${where}.${key}`, 'an array', value);
  return value;
}

export function object(value: unknown, where: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(where, 'an object', value);
  return value as Json;
}
