// @openfeature/flagd-core behind our interfaces: flagd's own compiled schema (its strict
// validation) to check documents, and the evaluator for flags whose JSON Logic our model
// cannot express. The one module that runs flagd-core; core never imports it.
import type { EvaluationContext as OpenFeatureContext, Logger } from '@openfeature/core';
import { type FeatureFlag, FlagdCore, MemoryStorage } from '@openfeature/flagd-core';
import type { EvaluationContext, EvaluationResult, ExternalEvaluator, FlagMetadata } from '../core/compile-flag.js';
import { fingerprint } from '../core/compile-flag.js';
import { ErrorCode, Reason } from '../core/reasons.js';

// flagd-core logs schema warnings and per-evaluation debug lines; we report problems ourselves.
const SILENT: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
};

export interface FlagdSchemaIssue {
  /** Where in the document, from the validator's JSON pointer. */
  readonly path: readonly (string | number)[];
  readonly message: string;
}

interface AjvError {
  readonly instancePath?: string;
  readonly message?: string;
  readonly params?: Record<string, unknown>;
}

function pointerPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

/** flagd-core's ParseError carries the validator's errors as JSON text after its message. */
function issuesOf(err: unknown): FlagdSchemaIssue[] {
  const message = err instanceof Error ? err.message : String(err);
  const json = message.indexOf(': [');
  if (json >= 0) {
    try {
      const errors = JSON.parse(message.slice(json + 2)) as AjvError[];
      const seen = new Set<string>();
      const issues: FlagdSchemaIssue[] = [];
      for (const e of errors) {
        const detail = e.params?.additionalProperty !== undefined ? ` (${JSON.stringify(e.params.additionalProperty)})` : '';
        const issue = { path: pointerPath(e.instancePath ?? ''), message: `flagd schema: ${e.message ?? 'invalid'}${detail}` };
        const id = JSON.stringify(issue);
        if (!seen.has(id)) issues.push(issue);
        seen.add(id);
      }
      return issues;
    } catch {
      // Not the validator's list after all: report the message as it is.
    }
  }
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return [{ path: [], message: `flagd: ${message}${cause}` }];
}

/**
 * What flagd's own schema, through flagd-core's strict validation, finds wrong with a flag
 * document, plus targeting flagd-core cannot compile; empty when flagd would accept it all.
 */
export function validateFlagdText(text: string): FlagdSchemaIssue[] {
  const storage = new MemoryStorage(SILENT);
  try {
    storage.setConfigurations(text, true);
  } catch (err) {
    return issuesOf(err);
  }
  const issues: FlagdSchemaIssue[] = [];
  for (const [key, flag] of storage.getFlags()) {
    const probe = flag.evaluate({}, SILENT);
    if ((probe.errorCode as string | undefined) === 'PARSE_ERROR') issues.push({ path: ['flags', key, 'targeting'], message: `flagd: ${probe.errorMessage}` });
  }
  return issues;
}

const REASONS: Readonly<Record<string, Reason>> = Reason;

const ERROR_CODES: Readonly<Record<string, ErrorCode>> = {
  PARSE_ERROR: ErrorCode.PARSE_ERROR,
  TYPE_MISMATCH: ErrorCode.TYPE_MISMATCH,
  FLAG_NOT_FOUND: ErrorCode.FLAG_NOT_FOUND,
};

/**
 * One flag evaluated by flagd-core, exactly as a flagd daemon would (JSON Logic, sem_ver,
 * fractional, $ref). flagd-core reads the wall clock for `$flagd.timestamp` itself, so such a
 * flag follows real time, not an injected clock.
 */
export class FlagdEvaluator implements ExternalEvaluator {
  constructor(
    private readonly flag: FeatureFlag,
    readonly revision: string,
    private readonly metadata: FlagMetadata,
  ) {}

  evaluate(context: EvaluationContext): EvaluationResult {
    try {
      const result = this.flag.evaluate(context as OpenFeatureContext, SILENT);
      if (result.reason === 'ERROR' || result.value === undefined) {
        const code = result.reason === 'ERROR' ? result.errorCode : undefined;
        return {
          value: null,
          reason: Reason.ERROR,
          errorCode: (code !== undefined ? ERROR_CODES[code] : undefined) ?? ErrorCode.GENERAL,
          errorMessage: result.reason === 'ERROR' ? result.errorMessage : `flag "${this.flag.key}" resolved to no value`,
          flagMetadata: this.metadata,
        };
      }
      // flagd-core answers STATIC, TARGETING_MATCH or DEFAULT here (DISABLED is decided before us).
      return { value: result.value, variant: result.variant, reason: REASONS[result.reason] ?? Reason.DEFAULT, flagMetadata: this.metadata };
    } catch (err) {
      return { value: null, reason: Reason.ERROR, errorCode: ErrorCode.GENERAL, errorMessage: String(err), flagMetadata: this.metadata };
    }
  }
}

export interface FlagdEvaluatorSource {
  /** The flags to evaluate, as flagd reads them. */
  readonly flags: Readonly<Record<string, unknown>>;
  readonly $evaluators?: unknown;
  readonly metadata?: unknown;
}

/**
 * An evaluator for each flag of `source`, all backed by one FlagdCore. `metadataOf` gives the
 * flagMetadata of a flag's results (ours: its user metadata and revision).
 */
export function flagdEvaluators(source: FlagdEvaluatorSource, metadataOf: (key: string, revision: string) => FlagMetadata): Map<string, FlagdEvaluator> {
  const evaluators = new Map<string, FlagdEvaluator>();
  const keys = Object.keys(source.flags);
  if (keys.length === 0) return evaluators;
  const document = {
    flags: source.flags,
    ...(source.$evaluators !== undefined ? { $evaluators: source.$evaluators } : {}),
    ...(source.metadata !== undefined ? { metadata: source.metadata } : {}),
  };
  const core = new FlagdCore(new MemoryStorage(SILENT), SILENT);
  core.setConfigurations(JSON.stringify(document));
  for (const key of keys) {
    const flag = core.getFlag(key);
    if (flag === undefined) continue;
    const revision = fingerprint({ flag: source.flags[key], evaluators: source.$evaluators, metadata: source.metadata });
    evaluators.set(key, new FlagdEvaluator(flag, revision, Object.freeze(metadataOf(key, revision))));
  }
  return evaluators;
}
