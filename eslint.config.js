// Lint rules the house style asks for: no floating promises, type-only imports,
// no `export *`, no unused code, and imports that point down the layers of
// docs/architecture.md (core <- flagd, runtime <- stores <- provider, guardian, deploy,
// telemetry, ingest <- notify <- cli, server).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const STORE_IMPLEMENTATION = {
  regex: '^(\\.\\./)+stores/(?!flag-store\\.js$|store-writer\\.js$)',
  message: 'Only cli/ and server/ choose a store: take the FlagStore interface (stores/flag-store.ts) or a StoreWriter instead.',
};
const COMPOSITION_ROOTS = {
  regex: '^(\\.\\./)+(cli|server)/',
  message: 'cli/ and server/ are composition roots; nothing below them imports them.',
};

/** One layer's import rule: `patterns` are what files under `folder` may not import. */
function layer(folder, patterns) {
  return { files: [`src/${folder}/**/*.ts`], rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns }] } };
}

const LAYERS = [
  layer('core', [
    { regex: '^\\.\\./', message: 'core/ is pure and imports nothing else of the project; pass what it needs in as arguments.' },
    { regex: '^node:', message: 'core/ does no I/O; do it in stores/ or a composition root and pass the data in.' },
    { regex: '^(@opentelemetry|@openfeature)/', allowTypeImports: true, message: 'core/ has no OpenTelemetry or OpenFeature runtime imports (types are fine).' },
  ]),
  layer('flagd', [{ regex: '^\\.\\./(?!core/)', message: 'flagd/ is an adapter over core/ only.' }]),
  layer('runtime', [{ regex: '^\\.\\./(?!core/)', message: 'runtime/ holds process defaults (the wall clock) over core/ types only.' }]),
  layer('stores', [{ regex: '^\\.\\./(?!core/|flagd/|runtime/)', message: 'stores/ imports only core/, flagd/ and runtime/.' }]),
  layer('provider', [
    STORE_IMPLEMENTATION,
    COMPOSITION_ROOTS,
    { regex: '^(\\.\\./)+(guardian|deploy|ingest)/', message: 'The provider knows only the store and telemetry names; the guardian reads spans, not the provider.' },
  ]),
  layer('guardian', [
    STORE_IMPLEMENTATION,
    COMPOSITION_ROOTS,
    { regex: '^(\\.\\./)+(provider|deploy|flagd|ingest)/', message: 'The guardian acts through a FlagSource and a RolloutWriter; it never imports the provider or the plans.' },
    { regex: '^(\\.\\./)+telemetry/(?!names\\.js$)', message: 'The guardian takes only names from telemetry/; GuardianTelemetry observes the guardian, not the other way round.' },
  ]),
  layer('deploy', [
    STORE_IMPLEMENTATION,
    COMPOSITION_ROOTS,
    { regex: '^(\\.\\./)+(provider|telemetry|flagd|ingest)/', message: 'Plans act through the store and ask the guardian for judgments.' },
    { regex: '^(\\.\\./)+guardian/', allowTypeImports: true, message: 'Plans take the guardian through a JudgmentSource: import its types only.' },
  ]),
  layer('telemetry', [
    STORE_IMPLEMENTATION,
    COMPOSITION_ROOTS,
    { regex: '^(\\.\\./)+(provider|deploy|flagd)/', message: 'telemetry/ owns names and instruments over the guardian.' },
    { regex: '^(\\.\\./)+ingest/', allowTypeImports: true, message: 'telemetry/ observes ingest through its stats type; the names it labels them with live in telemetry/names.ts.' },
  ]),
  layer('notify', [
    { regex: '^(\\.\\./)+stores/', message: 'notify/ hears the guardian and the plans through their listeners; it never touches a store.' },
    COMPOSITION_ROOTS,
    { regex: '^(\\.\\./)+(provider|flagd|ingest)/', message: 'notify/ turns guardian and plan events into webhooks; it never imports the provider or the inputs.' },
    { regex: '^(\\.\\./)+(guardian|deploy)/', allowTypeImports: true, message: 'notify/ takes the guardian and the plan runner as listeners: import their types only.' },
    { regex: '^(\\.\\./)+telemetry/(?!names\\.js$)', message: 'notify/ takes only names from telemetry/; GuardianTelemetry reads the notifier\'s counts.' },
  ]),
  layer('ingest', [STORE_IMPLEMENTATION, COMPOSITION_ROOTS, { regex: '^(\\.\\./)+(provider|deploy)/', message: 'ingest/ turns inputs into outcomes for the guardian.' }]),
  layer('server', [{ regex: '^(\\.\\./)+cli/', message: 'server/ is a composition root beside cli/, not under it.' }]),
];

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'node_modules/', 'test/docs/.run/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'separate-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportAllDeclaration', message: 'Name each export instead of `export *`.' }],
    },
  },
  ...LAYERS,
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
