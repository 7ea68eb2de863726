// The JSON Schema of the flag file, for editors (yaml-language-server, VS Code), generated
// from the same zod schema that validates files, so the two cannot drift.
import { z } from 'zod';
import { FLAG_FILE_SCHEMA_URL, flagFileSchema } from './flag-schema.js';

export function flagFileJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(flagFileSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...schema, $id: FLAG_FILE_SCHEMA_URL, title: 'rollout-guardian flag file' };
}
