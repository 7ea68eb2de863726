// Every TypeScript snippet in README.md and docs/*.md compiles against the project as a user
// would write it (importing 'rollout-guardian'), so none drifts from the code; the snippets
// fenced as ```ts run are short and self-contained, and are also run (each ends by printing
// something, which shows it got to its end).
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it, vi } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGE_NAME = 'rollout-guardian';

interface Snippet {
  /** Where it is: `docs/guardian.md:12` (the line of the opening fence). */
  readonly where: string;
  readonly code: string;
  readonly run: boolean;
  /** A virtual file inside the repository, so packages resolve from node_modules. */
  readonly fileName: string;
}

function markdownFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join('docs', name));
  return ['README.md', ...docs.sort()];
}

function snippetsOf(file: string): Snippet[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const found: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript)(\s+run)?\s*$/.exec(lines[i] ?? '');
    if (open === null) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !(lines[i] ?? '').startsWith('```'); i++) body.push(lines[i] ?? '');
    const where = `${file}:${start + 1}`;
    const fileName = join(ROOT, '.doc-snippets', `${file.replace(/[/.]/g, '-')}-${start + 1}.ts`);
    found.push({ where, code: `${body.join('\n')}\nexport {};\n`, run: open[2] !== undefined, fileName });
  }
  return found;
}

const SNIPPETS = markdownFiles().flatMap(snippetsOf);

function compilerOptions(): ts.CompilerOptions {
  const configPath = join(ROOT, 'tsconfig.json');
  const config = ts.readConfigFile(configPath, (path) => ts.sys.readFile(path));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
  // The snippets import the package by name, as users do; it resolves to the sources.
  return { ...parsed.options, noEmit: true, declaration: false, sourceMap: false, paths: { [PACKAGE_NAME]: [join(ROOT, 'src/index.ts')] } };
}

function typeErrors(): Map<string, string[]> {
  const byFile = new Map(SNIPPETS.map((s) => [s.fileName, s]));
  const options = compilerOptions();
  const base = ts.createCompilerHost(options, true);
  const host: ts.CompilerHost = {
    ...base,
    fileExists: (name) => byFile.has(name) || base.fileExists(name),
    readFile: (name) => byFile.get(name)?.code ?? base.readFile(name),
    getSourceFile: (name, language, ...rest) => {
      const snippet = byFile.get(name);
      return snippet !== undefined ? ts.createSourceFile(name, snippet.code, language, true) : base.getSourceFile(name, language, ...rest);
    },
  };
  const program = ts.createProgram([...byFile.keys()], options, host);
  const errors = new Map<string, string[]>();
  for (const snippet of SNIPPETS) {
    const source = program.getSourceFile(snippet.fileName);
    if (source === undefined) throw new Error(`${snippet.where}: not compiled`);
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
    errors.set(
      snippet.where,
      diagnostics.map((d) => {
        const line = d.start !== undefined ? source.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
        return `snippet line ${line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      }),
    );
  }
  return errors;
}

const RUN_DIR = join(ROOT, 'test/docs/.run');

afterAll(async () => {
  await rm(RUN_DIR, { recursive: true, force: true });
});

describe('the TypeScript snippets of README.md and docs/', () => {
  it('are found, and some are marked to run', () => {
    expect(SNIPPETS.length).toBeGreaterThanOrEqual(5);
    expect(SNIPPETS.some((s) => s.run)).toBe(true);
  });

  it('all type-check against the sources', () => {
    const errors = typeErrors();
    expect(Object.fromEntries([...errors].filter(([, list]) => list.length > 0))).toEqual({});
  }, 60_000);

  it.each(SNIPPETS.filter((s) => s.run).map((s) => [s.where, s] as const))('%s runs to completion', async (_where, snippet) => {
    await mkdir(RUN_DIR, { recursive: true });
    const file = join(RUN_DIR, `${relative(join(ROOT, '.doc-snippets'), snippet.fileName)}`);
    const source = relative(RUN_DIR, join(ROOT, 'src/index.js'));
    await writeFile(file, snippet.code.replaceAll(`from '${PACKAGE_NAME}'`, `from '${source}'`));
    // What a snippet prints is for its reader; here it only shows that the snippet got to its end.
    const printed = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      await import(pathToFileURL(file).href);
      expect(printed).toHaveBeenCalled();
    } finally {
      printed.mockRestore();
    }
  });
});
