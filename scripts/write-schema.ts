// Writes schema/flags.schema.json from the zod schema (`npm run schema`); a test checks the
// committed file is current.
import { writeFileSync } from 'node:fs';
import { flagFileJsonSchema } from '../src/core/json-schema.js';

writeFileSync(new URL('../schema/flags.schema.json', import.meta.url), `${JSON.stringify(flagFileJsonSchema(), null, 2)}\n`);
