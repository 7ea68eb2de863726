// The flag file's schema as users meet it: error messages that name the bad field, say what
// was expected and quote what was found; durations; and the exported JSON Schema, which must
// not reject a file the parser accepts.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { formatDurationMs, parseDurationMs } from '../../src/core/duration.js';
import { FLAG_FILE_SCHEMA_URL } from '../../src/core/flag-schema.js';
import { flagFileJsonSchema } from '../../src/core/json-schema.js';
import { describeIssue, formatIssuePath, parseFlagDocument, parseStateDocument } from '../../src/core/parse-flags.js';
import type { SchemaIssue } from '../../src/core/parse-flags.js';

const flag = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ variants: { on: true, off: false }, defaultVariant: 'off', ...extra });

/** The issues of the one flag `checkout`, described as a user reads them. */
function problemsWith(definition: unknown): string[] {
  const parsed = parseFlagDocument({ flags: { checkout: definition } });
  expect(parsed.fileIssues).toEqual([]);
  expect(parsed.definitions.has('checkout')).toBe(false);
  return (parsed.invalid.get('checkout') ?? []).map(describeIssue);
}

describe('a bad field yields an issue that names it, says what was expected and what was got', () => {
  it.each<[string, unknown, string[]]>([
    ['a percentage over 100', flag({ rollout: { variant: 'on', percentage: 150 } }), ['flags.checkout.rollout.percentage: expected a percentage from 0 to 100', 'got 150']],
    ['a negative percentage', flag({ rollout: { variant: 'on', percentage: -1 } }), ['flags.checkout.rollout.percentage: expected a percentage from 0 to 100', 'got -1']],
    ['a percentage written as a string', flag({ rollout: { variant: 'on', percentage: '10' } }), ['flags.checkout.rollout.percentage: expected a percentage from 0 to 100 (a number)', 'got "10"']],
    ['a percentage finer than 0.0001%', flag({ rollout: { variant: 'on', percentage: 12.34567 } }), ['flags.checkout.rollout.percentage: expected at most 4 decimal places', 'got 12.34567']],
    ['a misspelt field', flag({ rollout: { variant: 'on', percentge: 10 } }), ['flags.checkout.rollout: unknown field "percentge" (check the spelling)']],
    ['a defaultVariant that is not a variant', flag({ defaultVariant: 'maybe' }), ['flags.checkout.defaultVariant: expected one of the variants: on, off', 'got "maybe"']],
    ['a rollout to an unknown variant', flag({ rollout: { variant: 'yes', percentage: 5 } }), ['flags.checkout.rollout.variant: expected one of the variants: on, off', 'got "yes"']],
    ['a rollout whose treatment is the baseline', flag({ rollout: { variant: 'off', percentage: 5 } }), ['flags.checkout.rollout.variant: expected a treatment variant other than defaultVariant', 'got "off"']],
    ['a targeting rule to an unknown variant', flag({ targeting: [{ when: { attribute: 'region', in: ['eu'] }, variant: 'blue' }] }), ['flags.checkout.targeting[0].variant: expected one of the variants: on, off', 'got "blue"']],
    ['variants of mixed types', flag({ variants: { on: true, off: 'no' } }), ['flags.checkout.variants: expected every variant to have the same type, got boolean and string']],
    ['no variants', flag({ variants: {} }), ['flags.checkout.variants: expected at least one variant']],
    ['a missing defaultVariant', { variants: { on: true, off: false } }, ['flags.checkout.defaultVariant: expected the name of the baseline variant (the field is missing)']],
    ['an unknown state', flag({ state: 'on' }), ['flags.checkout.state: expected enabled or disabled', 'got "on"']],
    [
      'a progressive rollout that ends before it starts',
      flag({ rollout: { variant: 'on', progressive: { start: '2026-05-02T00:00:00Z', end: '2026-05-01T00:00:00Z' } } }),
      ['flags.checkout.rollout.progressive.end: expected end to be after start', 'got "2026-05-01T00:00:00Z"'],
    ],
    [
      'a progressive start that is not a date-time',
      flag({ rollout: { variant: 'on', progressive: { start: 'tomorrow', end: '2026-05-01T00:00:00Z' } } }),
      ['flags.checkout.rollout.progressive.start: expected an ISO 8601 date-time', 'got "tomorrow"'],
    ],
    [
      'both a percentage and a progressive rollout',
      flag({ rollout: { variant: 'on', percentage: 5, progressive: { start: '2026-05-01T00:00:00Z', end: '2026-05-02T00:00:00Z' } } }),
      ['flags.checkout.rollout: expected either percentage or progressive, not both'],
    ],
    [
      'a condition with two operators',
      flag({ targeting: [{ when: { attribute: 'region', in: ['eu-west-1'], equals: 'eu-west-1' }, variant: 'on' }] }),
      ['flags.checkout.targeting[0].when: expected exactly one operator of in, notIn, equals, startsWith, endsWith, got in and equals'],
    ],
    [
      'a condition with two operators inside a list',
      flag({ targeting: [{ when: [{ attribute: 'plan', equals: 'pro' }, { attribute: 'region', in: ['eu'], notIn: ['us'] }], variant: 'on' }] }),
      ['flags.checkout.targeting[0].when[1]: expected exactly one operator', 'got in and notIn'],
    ],
    ['a condition with no operator', flag({ targeting: [{ when: { attribute: 'region' }, variant: 'on' }] }), ['flags.checkout.targeting[0].when: expected exactly one operator of in, notIn, equals, startsWith, endsWith']],
    ['a bad sustainFor duration', flag({ guard: { sustainFor: '5 minutes' } }), ['flags.checkout.guard.sustainFor: expected a duration such as 30s, 5m, 1h30m or 7d', 'got "5 minutes"']],
    ['an error rate given as a percentage', flag({ guard: { maxErrorRate: 5 } }), ['flags.checkout.guard.maxErrorRate: expected an error rate from 0 to 1 (0.01 is 1%)', 'got 5']],
    ['a latency threshold of zero', flag({ guard: { maxP95Ms: 0 } }), ['flags.checkout.guard.maxP95Ms: expected milliseconds greater than 0', 'got 0']],
  ])('%s', (_case, definition, fragments) => {
    const problems = problemsWith(definition);
    expect(problems).toHaveLength(1);
    for (const fragment of fragments) expect(problems[0]).toContain(fragment);
  });

});

describe('parsing flag and state documents', () => {
  it('reports every bad field of a flag, not just the first', () => {
    const problems = problemsWith(flag({ state: 'on', rollout: { variant: 'on', percentage: 150 } }));
    expect(problems.some((p) => p.startsWith('flags.checkout.state:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('flags.checkout.rollout.percentage:'))).toBe(true);
  });

  it('shortens a long offending value', () => {
    const [problem] = problemsWith(flag({ state: 'x'.repeat(500) }));
    expect(problem).toContain('...');
    expect(problem?.length).toBeLessThan(200);
  });

  it('reports a file whose shape is wrong as a whole in fileIssues, with nothing usable', () => {
    for (const document of [{ flags: 3 }, { flag: {} }, [], 'flags: {}']) {
      const parsed = parseFlagDocument(document);
      expect(parsed.fileIssues.length).toBeGreaterThan(0);
      expect(parsed.definitions.size).toBe(0);
    }
    const misspelt = parseFlagDocument({ flag: {} }).fileIssues.map(describeIssue);
    expect(misspelt).toContain('flags: expected a map of flag keys to flag definitions (the field is missing)');
    expect(misspelt).toContain('(top level): unknown field "flag" (check the spelling)');
  });

  it('says that flags is missing when the document is empty (an empty YAML file reads as null)', () => {
    for (const empty of [undefined, null]) {
      expect(parseFlagDocument(empty).fileIssues.map(describeIssue)).toEqual(['flags: expected a map of flag keys to flag definitions (the field is missing)']);
    }
  });

  it('adds the emergency flags to a file that defines none', () => {
    const parsed = parseFlagDocument({ flags: {} });
    expect(parsed.fileIssues).toEqual([]);
    expect(parsed.invalid.size).toBe(0);
    expect([...parsed.definitions.keys()].sort()).toEqual(['emergency_shutdown', 'maintenance_mode', 'read_only_mode']);
  });

  it('quotes flag keys that would read ambiguously in a path', () => {
    expect(formatIssuePath(['flags', 'new-checkout', 'rollout', 'percentage'])).toBe('flags.new-checkout.rollout.percentage');
    expect(formatIssuePath(['flags', 'a.b', 'targeting', 0, 'when'])).toBe('flags["a.b"].targeting[0].when');
    expect(formatIssuePath(['flags', 'has space'])).toBe('flags["has space"]');
    expect(formatIssuePath([])).toBe('(top level)');
    const issue: SchemaIssue = { path: ['flags', 'a.b', 'defaultVariant'], message: 'expected one of the variants: on, off', received: '"x"' };
    expect(describeIssue(issue)).toBe('flags["a.b"].defaultVariant: expected one of the variants: on, off, got "x"');
  });

  it('validates runtime state, keeping fields a newer version wrote', () => {
    const at = '2026-05-01T00:00:00Z';
    const good = parseStateDocument({ version: 1, flags: { checkout: { percentage: 20, future: 'kept' } }, writtenBy: 'v2' });
    expect(good.issues).toEqual([]);
    expect(good.flags.get('checkout')).toEqual({ percentage: 20, future: 'kept' });
    expect(good.raw['writtenBy']).toBe('v2');
    expect(parseStateDocument(undefined)).toMatchObject({ issues: [] });
    const bad = parseStateDocument({ version: 1, flags: { checkout: { percentage: 101, override: { variant: 'on', actor: 'kim', reason: 'r', at } } } });
    expect(bad.issues.map(describeIssue)).toEqual(['flags.checkout.percentage: expected a percentage from 0 to 100, got 101']);
    expect(bad.flags.size).toBe(0);
  });
});

describe('durations', () => {
  it.each<[string | number, number]>([
    ['500ms', 500],
    ['30s', 30 * 1000],
    ['5m', 5 * 60_000],
    ['1h30m', 90 * 60_000],
    ['7d', 7 * 86_400_000],
    ['2w', 14 * 86_400_000],
    ['1.5h', 90 * 60_000],
    ['1d2h3m4s5ms', 86_400_000 + 2 * 3_600_000 + 3 * 60_000 + 4_000 + 5],
    [' 5m ', 5 * 60_000],
    ['250', 250],
    [1000, 1000],
    [0, 0],
  ])('parse %j as %i ms', (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms);
  });

  it.each<[string | number]>([[''], ['5 minutes'], ['5x'], ['m5'], ['5m garbage'], ['-5m'], ['1h 30m'], [-1], [Number.NaN], [Number.POSITIVE_INFINITY]])(
    'reject %o',
    (text) => {
      expect(parseDurationMs(text)).toBeUndefined();
    },
  );

  it('format compactly, largest unit first', () => {
    expect(formatDurationMs(0)).toBe('0s');
    expect(formatDurationMs(250)).toBe('250ms');
    expect(formatDurationMs(90_000)).toBe('1m30s');
    expect(formatDurationMs(86_400_000 + 3_600_000)).toBe('1d1h');
  });

  it('format to a text that parses back to the same duration, to the second above one second', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 400 * 86_400_000 }), (ms) => {
        const back = parseDurationMs(formatDurationMs(ms));
        expect(back).toBe(ms < 1000 ? ms : Math.round(ms / 1000) * 1000);
      }),
      { seed: 0x64757261, numRuns: 2000 },
    );
  });
});

// A validator for the subset of JSON Schema that z.toJSONSchema emits for the flag file. An
// unknown keyword fails loudly, so the subset cannot silently shrink what is checked.
type JsonSchema = Record<string, unknown>;

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function validateJsonSchema(root: JsonSchema, schema: JsonSchema, value: unknown, path = ''): string[] {
  const errors: string[] = [];
  const fail = (message: string): void => void errors.push(`${path || '/'}: ${message}`);
  for (const [keyword, arg] of Object.entries(schema)) {
    switch (keyword) {
      case '$schema':
      case '$id':
      case '$defs':
      case 'default':
      case 'format': // the pattern beside it carries the constraint
      case 'description':
      case 'title':
        break;
      case '$ref': {
        const name = String(arg).replace(/^#\/\$defs\//, '');
        const target = (root['$defs'] as Record<string, JsonSchema> | undefined)?.[name];
        if (target === undefined) fail(`unresolvable $ref ${String(arg)}`);
        else errors.push(...validateJsonSchema(root, target, value, path));
        break;
      }
      case 'type': {
        const types = Array.isArray(arg) ? (arg as string[]) : [arg as string];
        const actual = jsonType(value);
        if (!types.some((t) => t === actual || (t === 'number' && actual === 'integer'))) fail(`expected ${types.join('|')}, got ${actual}`);
        break;
      }
      case 'enum':
        if (!(arg as unknown[]).includes(value)) fail(`expected one of ${JSON.stringify(arg)}`);
        break;
      case 'anyOf':
        if (!(arg as JsonSchema[]).some((option) => validateJsonSchema(root, option, value, path).length === 0)) fail('matches no anyOf option');
        break;
      case 'minimum':
        if (typeof value === 'number' && value < (arg as number)) fail(`below minimum ${String(arg)}`);
        break;
      case 'maximum':
        if (typeof value === 'number' && value > (arg as number)) fail(`above maximum ${String(arg)}`);
        break;
      case 'exclusiveMinimum':
        if (typeof value === 'number' && value <= (arg as number)) fail(`not above ${String(arg)}`);
        break;
      case 'minLength':
        if (typeof value === 'string' && [...value].length < (arg as number)) fail(`shorter than ${String(arg)}`);
        break;
      case 'pattern':
        if (typeof value === 'string' && !new RegExp(arg as string, 'u').test(value)) fail(`does not match ${String(arg)}`);
        break;
      case 'minItems':
        if (Array.isArray(value) && value.length < (arg as number)) fail(`fewer than ${String(arg)} items`);
        break;
      case 'items':
        if (Array.isArray(value)) value.forEach((item, i) => errors.push(...validateJsonSchema(root, arg as JsonSchema, item, `${path}/${i}`)));
        break;
      case 'required':
        if (jsonType(value) === 'object') {
          for (const key of arg as string[]) if (!Object.hasOwn(value as object, key)) fail(`missing required ${key}`);
        }
        break;
      case 'properties':
      case 'additionalProperties':
      case 'propertyNames':
        if (jsonType(value) === 'object') errors.push(...validateObject(root, schema, keyword, value as Record<string, unknown>, path));
        break;
      default:
        throw new Error(`the test's JSON Schema validator does not know the keyword ${keyword} (at ${path || '/'})`);
    }
  }
  return errors;
}

function validateObject(root: JsonSchema, schema: JsonSchema, keyword: string, value: Record<string, unknown>, path: string): string[] {
  const errors: string[] = [];
  const properties = (schema['properties'] ?? {}) as Record<string, JsonSchema>;
  for (const [key, child] of Object.entries(value)) {
    if (keyword === 'properties' && Object.hasOwn(properties, key)) {
      errors.push(...validateJsonSchema(root, properties[key] as JsonSchema, child, `${path}/${key}`));
    } else if (keyword === 'additionalProperties' && !Object.hasOwn(properties, key)) {
      const additional = schema['additionalProperties'];
      if (additional === false) errors.push(`${path}/${key}: not allowed`);
      else errors.push(...validateJsonSchema(root, additional as JsonSchema, child, `${path}/${key}`));
    } else if (keyword === 'propertyNames') {
      errors.push(...validateJsonSchema(root, schema['propertyNames'] as JsonSchema, key, `${path}/${key} (name)`));
    }
  }
  return errors;
}

describe('the JSON Schema of the flag file', () => {
  // The file people write is zod's input: fields with defaults (state, progressive from/to)
  // are optional there. z.toJSONSchema's default is the output form, which would mark them
  // required and make an editor reject a file the parser accepts; the tests below catch that.
  const jsonSchema = flagFileJsonSchema() as JsonSchema;
  const parserAccepts = (document: unknown): boolean => {
    const parsed = parseFlagDocument(document);
    return parsed.fileIssues.length === 0 && parsed.invalid.size === 0;
  };

  it('is an object schema with a map of flags and no unknown top-level fields', () => {
    expect(jsonSchema['type']).toBe('object');
    expect(jsonSchema['additionalProperties']).toBe(false);
    expect(jsonSchema['required']).toEqual(['flags']);
    const flags = (jsonSchema['properties'] as Record<string, JsonSchema>)['flags'];
    expect(flags?.['type']).toBe('object');
    const definition = flags?.['additionalProperties'] as JsonSchema;
    expect(definition['required']).toEqual(['variants', 'defaultVariant']);
    expect(Object.keys(definition['properties'] as object)).toEqual(expect.arrayContaining(['variants', 'defaultVariant', 'state', 'rollout', 'targeting', 'guard']));
  });

  it('is the one committed in schema/flags.schema.json (regenerate with npm run schema)', () => {
    const committed: unknown = JSON.parse(readFileSync(new URL('../../schema/flags.schema.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(jsonSchema);
    expect(jsonSchema['$id']).toBe(FLAG_FILE_SCHEMA_URL);
  });

  it('accepts the example file, which the parser accepts too', () => {
    const example: unknown = parseYaml(readFileSync(new URL('../../examples/flags.yaml', import.meta.url), 'utf8'));
    expect(parserAccepts(example)).toBe(true);
    expect(validateJsonSchema(jsonSchema, jsonSchema, example)).toEqual([]);
  });

  const accepted: [string, unknown][] = [
    ['a minimal flag', { flags: { checkout: flag() } }],
    [
      'the example of the design',
      {
        $schema: FLAG_FILE_SCHEMA_URL,
        flags: {
          'new-checkout': flag({
            state: 'enabled',
            rollout: { variant: 'on', percentage: 10 },
            targeting: [{ when: { attribute: 'region', in: ['eu-west-1'] }, variant: 'on' }],
            guard: { maxErrorRate: 0.01, maxP95Ms: 500, maxP99Ms: 1000, sustainFor: '5m' },
          }),
        },
      },
    ],
    ['a progressive rollout without from and to', { flags: { ramp: flag({ rollout: { variant: 'on', progressive: { start: '2026-05-01T00:00:00Z', end: '2026-05-08T00:00:00+02:00' } } }) } }],
    ['string, number and object variants', { flags: { s: { variants: { a: 'x', b: 'y' }, defaultVariant: 'a' }, n: { variants: { a: 1, b: 2.5 }, defaultVariant: 'b' }, o: { variants: { a: { k: [1, null] }, b: {} }, defaultVariant: 'a' } } }],
    ['a list of conditions and metadata', { flags: { c: flag({ targeting: [{ name: 'pro-eu', when: [{ attribute: 'plan', equals: 'pro' }, { attribute: 'tier', notIn: [1, true] }], variant: 'on' }], metadata: { owner: 'payments', ticket: 42 } }) } }],
    ['a guard with every field', { flags: { g: flag({ guard: { enabled: true, maxErrorRate: 0, sustainFor: 30000, minSamples: 10, confidence: 0.99, healthCheckFailures: 3, fastPath: false, relative: { maxErrorRateIncrease: 0.01, maxP95IncreasePct: 20 } } }) } }],
  ];

  it.each(accepted)('accepts what the parser accepts: %s', (_case, document) => {
    expect(parserAccepts(document)).toBe(true);
    expect(validateJsonSchema(jsonSchema, jsonSchema, document)).toEqual([]);
  });

  const rejected: [string, unknown][] = [
    ['a percentage over 100', { flags: { c: flag({ rollout: { variant: 'on', percentage: 150 } }) } }],
    ['a misspelt field', { flags: { c: flag({ rollout: { variant: 'on', percentge: 10 } }) } }],
    ['an unknown state', { flags: { c: flag({ state: 'on' }) } }],
    ['a missing defaultVariant', { flags: { c: { variants: { on: true } } } }],
    ['an unknown condition operator', { flags: { c: flag({ targeting: [{ when: { attribute: 'region', contains: 'eu' }, variant: 'on' }] }) } }],
    ['an error rate over 1', { flags: { c: flag({ guard: { maxErrorRate: 2 } }) } }],
    ['a start that is not a date-time', { flags: { c: flag({ rollout: { variant: 'on', progressive: { start: 'tomorrow', end: '2026-05-08T00:00:00Z' } } }) } }],
    ['an unknown top-level field', { flags: {}, flag: {} }],
  ];

  it.each(rejected)('rejects what the parser rejects, where a JSON Schema can say it: %s', (_case, document) => {
    expect(parserAccepts(document)).toBe(false);
    expect(validateJsonSchema(jsonSchema, jsonSchema, document)).not.toEqual([]);
  });

  it('never rejects a generated file that the parser accepts', () => {
    const variantName = fc.constantFrom('on', 'off', 'blue');
    const percentage = fc.oneof(fc.integer({ min: -5, max: 105 }), fc.double({ min: 0, max: 100, noNaN: true }), fc.constant('10'));
    const condition = fc.record(
      { attribute: fc.constantFrom('region', 'targetingKey', ''), in: fc.array(fc.oneof(fc.string(), fc.integer(), fc.boolean()), { maxLength: 2 }), equals: fc.oneof(fc.string(), fc.integer()), startsWith: fc.string({ maxLength: 3 }) },
      { requiredKeys: ['attribute'] },
    );
    const date = fc.constantFrom('2026-05-01T00:00:00Z', '2026-05-02T00:00:00.5+02:00', '2026-02-30T00:00:00Z', 'soon');
    const definition = fc.record(
      {
        variants: fc.oneof(fc.constant({ on: true, off: false }), fc.constant({ on: 'a', off: 'b', blue: 'c' }), fc.constant({ on: 1, off: 'x' }), fc.constant({})),
        defaultVariant: variantName,
        state: fc.constantFrom('enabled', 'disabled', 'on'),
        rollout: fc.record(
          { variant: variantName, percentage, progressive: fc.record({ from: percentage, to: percentage, start: date, end: date }, { requiredKeys: ['start', 'end'] }) },
          { requiredKeys: ['variant'] },
        ),
        targeting: fc.array(fc.record({ when: fc.oneof(condition, fc.array(condition, { maxLength: 2 })), variant: variantName }), { maxLength: 2 }),
        guard: fc.record({ maxErrorRate: fc.double({ min: -1, max: 2, noNaN: true }), sustainFor: fc.oneof(fc.constantFrom('5m', '1h30m', 'soon'), fc.integer({ min: -1, max: 10 })), minSamples: fc.integer({ min: 0, max: 5 }) }, { requiredKeys: [] }),
      },
      { requiredKeys: ['variants'] },
    );
    let acceptedCount = 0;
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom('checkout', 'search', 'a.b'), definition, { maxKeys: 2 }), (flags) => {
        const document = { flags };
        if (!parserAccepts(document)) return;
        acceptedCount++;
        expect(validateJsonSchema(jsonSchema, jsonSchema, document)).toEqual([]);
      }),
      { seed: 0x6a736f6e, numRuns: 3000 },
    );
    // The generator must produce enough valid files for the property to mean something.
    expect(acceptedCount).toBeGreaterThan(100);
  });
});
