// `schema`: the JSON Schema of the flag file, for editors and CI (`$schema` in a flag file).
import type { Command } from 'commander';
import { flagFileJsonSchema } from '../../core/json-schema.js';
import { jsonText } from '../format.js';
import type { CommandContext } from './command-context.js';

export function registerSchema(program: Command, ctx: CommandContext): void {
  program
    .command('schema')
    .description('print the JSON Schema of the flag file (for editors: yaml-language-server, VS Code)')
    .action(() => {
      ctx.io.stdout.write(jsonText(flagFileJsonSchema()));
    });
}
