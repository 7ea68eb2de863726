// The OpenFeature server provider: lifecycle and events only. It keeps one compiled FlagSet,
// swaps it whole when the store changes, and answers every resolution from it with core's
// evaluate(); trouble in the store becomes STALE, then ERROR, never a failed evaluation.
import {
  type EvaluationContext,
  type JsonValue,
  type Logger,
  type Provider,
  type ResolutionDetails,
  ErrorCode,
  OpenFeatureEventEmitter,
  ProviderEvents,
  StandardResolutionReasons,
} from '@openfeature/server-sdk';
import type { Clock } from '../core/clock.js';
import type { ExternalEvaluator } from '../core/compile-flag.js';
import { type FlagValueType, flagValueType } from '../core/flag-schema.js';
import { type FlagSet, buildFlagSet, buildFlagSetInSteps, changedFlags } from '../core/flag-set.js';
import { evaluate } from '../core/evaluate.js';
import { type SchemaIssue, describeIssue } from '../core/parse-flags.js';
import type { FlagStore, StoreEvent, StoreSnapshot } from '../stores/flag-store.js';
import { systemClock } from '../runtime/system-clock.js';
import { markActiveSpan } from './span-attribution.js';
import { PROVIDER_NAME } from '../telemetry/names.js';

export interface RolloutProviderOptions {
  readonly store: FlagStore;
  readonly clock?: Clock;
  /** How long the store may be away before STALE becomes ERROR (default 30 s). */
  readonly errorGraceMs?: number;
  /** Where warnings about bad flag definitions go (default: console). */
  readonly logger?: Pick<Logger, 'warn' | 'error'>;
  /** Close the store when the provider closes (default true). */
  readonly closeStore?: boolean;
  /** Told of every resolution, errors included (reason ERROR); its failures never reach the caller. */
  readonly telemetry?: { recordEvaluation(flagKey: string, variant: string | undefined, reason: string): void };
  /**
   * Where exposures and tracked events go for guards with `conversions` (a CohortRegistry):
   * each evaluation of such a flag that serves a variant is an exposure, and track(event)
   * counts for the variant the context is served now. Its failures never reach the caller.
   */
  readonly tracking?: ConversionSink;
}

/** Receives exposures and tracked events per cohort; the guardian's CohortRegistry is one. */
export interface ConversionSink {
  recordExposure(flagKey: string, variant: string, atMs: number): void;
  recordConversion(flagKey: string, variant: string, event: string, atMs: number): void;
}

/** Which flags' guards check which tracked events, for the flag set it was built from. */
interface ConversionIndex {
  readonly set: FlagSet;
  readonly flagsByEvent: ReadonlyMap<string, readonly string[]>;
}

function conversionIndex(set: FlagSet): ConversionIndex {
  const flagsByEvent = new Map<string, string[]>();
  for (const [flagKey, entry] of set.flags) {
    if (entry.kind !== 'flag') continue;
    for (const { event } of entry.definition.guard?.conversions ?? []) {
      const flags = flagsByEvent.get(event) ?? [];
      if (!flags.includes(flagKey)) flags.push(flagKey);
      flagsByEvent.set(event, flags);
    }
  }
  return { set, flagsByEvent };
}

const EMPTY_SET: FlagSet = { flags: new Map(), shutdown: false };

function notFound<T>(flagKey: string, defaultValue: T): ResolutionDetails<T> {
  return {
    value: defaultValue,
    reason: StandardResolutionReasons.ERROR,
    errorCode: ErrorCode.FLAG_NOT_FOUND,
    errorMessage: `flag "${flagKey}" is not defined`,
  };
}

/** The store's serving map, with the last good evaluator kept for each flag whose new definition is bad. */
function withRetained(
  next: ReadonlyMap<string, ExternalEvaluator> | undefined,
  previous: ReadonlyMap<string, ExternalEvaluator> | undefined,
  retained: ReadonlyMap<string, unknown>,
): ReadonlyMap<string, ExternalEvaluator> | undefined {
  if (next === undefined || previous === undefined || retained.size === 0) return next;
  const serving = new Map(next);
  for (const key of retained.keys()) {
    const last = previous.get(key);
    if (last !== undefined) serving.set(key, last);
  }
  return serving;
}

/** Up to this many flags compile at once (a few milliseconds); more compile FLAGS_PER_TURN per turn of the event loop. */
const COMPILED_AT_ONCE = 500;
const FLAGS_PER_TURN = 100;

export class RolloutProvider implements Provider {
  readonly metadata = { name: PROVIDER_NAME } as const;
  readonly runsOn = 'server';
  readonly events = new OpenFeatureEventEmitter();
  private readonly store: FlagStore;
  private readonly clock: Clock;
  private readonly errorGraceMs: number;
  private readonly logger: Pick<Logger, 'warn' | 'error'>;
  private readonly closeStore: boolean;
  private readonly telemetry: RolloutProviderOptions['telemetry'];
  private readonly tracking: ConversionSink | undefined;
  private conversions: ConversionIndex | undefined;
  /** Flags with conversion checks, for the flag set `conversions` was built from: one lookup per evaluation. */
  private exposed: ReadonlySet<string> = new Set();
  private set: FlagSet = EMPTY_SET;
  /** The store's own serving semantics (flagd), when it has them: these flags are answered from here. */
  private serving: ReadonlyMap<string, ExternalEvaluator> | undefined;
  private unwatch: (() => void) | undefined;
  private errorTimer: NodeJS.Timeout | undefined;
  private troubled = false;
  private closed = false;
  /** Counts changes, so a large set still compiling is abandoned for a newer one. */
  private compiling = 0;

  constructor(options: RolloutProviderOptions) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.errorGraceMs = options.errorGraceMs ?? 30_000;
    this.logger = options.logger ?? console;
    this.closeStore = options.closeStore ?? true;
    this.telemetry = options.telemetry;
    this.tracking = options.tracking;
  }

  /**
   * OpenFeature's track(): counts the event for every flag whose guard has a conversion check
   * on it, in the variant `context` is served now (the same bucketing as its evaluations).
   * Needs a targeting key, as a sticky assignment does; never throws.
   */
  track(trackingEventName: string, context: EvaluationContext): void {
    const tracking = this.tracking;
    if (tracking === undefined) return;
    try {
      const flags = this.conversionIndex().flagsByEvent.get(trackingEventName);
      if (flags === undefined || context.targetingKey === undefined) return;
      const atMs = this.clock.now();
      for (const flagKey of flags) {
        const entry = this.set.flags.get(flagKey);
        if (entry === undefined) continue;
        const variant = evaluate(entry, context, atMs).variant;
        if (variant !== undefined) tracking.recordConversion(flagKey, variant, trackingEventName, atMs);
      }
    } catch (err) {
      this.safeLog('warn', `rollout-guardian: track("${trackingEventName}") was not counted: ${String(err)}`);
    }
  }

  private conversionIndex(): ConversionIndex {
    if (this.conversions?.set !== this.set) {
      this.conversions = conversionIndex(this.set);
      this.exposed = new Set([...this.conversions.flagsByEvent.values()].flat());
    }
    return this.conversions;
  }

  /**
   * Loads the flags. When the store cannot be read yet (no file, Redis down) initialization
   * fails, as OpenFeature expects, but the provider keeps listening: once the store answers it
   * loads the flags and emits READY.
   */
  async initialize(): Promise<void> {
    this.unwatch ??= this.store.watch((event) => this.onStoreEvent(event));
    let snapshot: StoreSnapshot;
    try {
      snapshot = await this.store.load();
    } catch (err) {
      this.troubled = true;
      throw err;
    }
    this.set = this.build(snapshot).set;
    this.serving = snapshot.serving;
    this.warnInvalid(snapshot);
  }

  async onClose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    this.unwatch = undefined;
    if (this.errorTimer) clearTimeout(this.errorTimer);
    this.errorTimer = undefined;
    this.events.removeAllHandlers();
    if (this.closeStore) await this.store.close();
  }

  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean, context: EvaluationContext): Promise<ResolutionDetails<boolean>> {
    return Promise.resolve(this.resolve(flagKey, 'boolean', defaultValue, context));
  }

  resolveStringEvaluation(flagKey: string, defaultValue: string, context: EvaluationContext): Promise<ResolutionDetails<string>> {
    return Promise.resolve(this.resolve(flagKey, 'string', defaultValue, context));
  }

  resolveNumberEvaluation(flagKey: string, defaultValue: number, context: EvaluationContext): Promise<ResolutionDetails<number>> {
    return Promise.resolve(this.resolve(flagKey, 'number', defaultValue, context));
  }

  resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T, context: EvaluationContext): Promise<ResolutionDetails<T>> {
    return Promise.resolve(this.resolve(flagKey, 'object', defaultValue, context));
  }

  private resolve<T>(flagKey: string, type: FlagValueType, defaultValue: T, context: EvaluationContext): ResolutionDetails<T> {
    const details = this.evaluateFlag(flagKey, type, defaultValue, context);
    try {
      this.telemetry?.recordEvaluation(flagKey, details.variant, details.reason ?? StandardResolutionReasons.UNKNOWN);
      if (this.tracking !== undefined && details.variant !== undefined && context.targetingKey !== undefined) {
        this.conversionIndex();
        if (this.exposed.has(flagKey)) this.tracking.recordExposure(flagKey, details.variant, this.clock.now());
      }
    } catch {
      // Telemetry cannot break an evaluation.
    }
    return details;
  }

  private evaluateFlag<T>(flagKey: string, type: FlagValueType, defaultValue: T, context: EvaluationContext): ResolutionDetails<T> {
    const served = this.serving?.get(flagKey);
    if (served !== undefined) return this.evaluateServed(flagKey, served, type, defaultValue, context);
    const entry = this.set.flags.get(flagKey);
    if (entry === undefined) return notFound(flagKey, defaultValue);
    // Only a progressive rollout (or a flag flagd-core evaluates) reads the time; the others skip the clock.
    const nowMs = entry.kind === 'flag' && entry.progressive === undefined ? 0 : this.clock.now();
    const result = evaluate(entry, context, nowMs);
    if (result.errorCode !== undefined) {
      return {
        value: defaultValue,
        reason: StandardResolutionReasons.ERROR,
        errorCode: result.errorCode as ErrorCode,
        errorMessage: result.errorMessage,
        flagMetadata: result.flagMetadata,
      };
    }
    if (entry.kind !== 'invalid' && entry.type !== type) {
      return {
        value: defaultValue,
        reason: StandardResolutionReasons.ERROR,
        errorCode: ErrorCode.TYPE_MISMATCH,
        errorMessage: `flag "${flagKey}" is a ${entry.type} flag, not ${type}`,
        flagMetadata: result.flagMetadata,
      };
    }
    markActiveSpan(flagKey, result.variant, result.reason);
    // The result is frozen and shaped as ResolutionDetails; the SDK copies it.
    return result as ResolutionDetails<T>;
  }

  /** As the store's server answers (flagd): no value means the caller's default; the type is the value's. */
  private evaluateServed<T>(flagKey: string, served: ExternalEvaluator, type: FlagValueType, defaultValue: T, context: EvaluationContext): ResolutionDetails<T> {
    let result;
    try {
      result = served.evaluate(context, this.clock.now());
    } catch (err) {
      return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.GENERAL, errorMessage: String(err) };
    }
    if (result.errorCode !== undefined) {
      return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: result.errorCode as ErrorCode, errorMessage: result.errorMessage, flagMetadata: result.flagMetadata };
    }
    if (result.value === null) {
      markActiveSpan(flagKey, undefined, result.reason);
      return { value: defaultValue, reason: result.reason, flagMetadata: result.flagMetadata };
    }
    if (flagValueType(result.value) !== type) {
      return {
        value: defaultValue,
        reason: StandardResolutionReasons.ERROR,
        errorCode: ErrorCode.TYPE_MISMATCH,
        errorMessage: `flag "${flagKey}" resolved to a ${flagValueType(result.value)} value, not ${type}`,
        flagMetadata: result.flagMetadata,
      };
    }
    markActiveSpan(flagKey, result.variant, result.reason);
    return result as ResolutionDetails<T>;
  }

  private build(snapshot: StoreSnapshot): ReturnType<typeof buildFlagSet> {
    return buildFlagSet(snapshot.parsed, snapshot.state, this.clock.now(), this.set === EMPTY_SET ? undefined : this.set, snapshot.external);
  }

  private warnInvalid(snapshot: StoreSnapshot, retained?: ReadonlyMap<string, readonly SchemaIssue[]>): void {
    for (const [key, issues] of snapshot.parsed.invalid) {
      const where = snapshot.flagErrors?.get(key) ?? issues.map(describeIssue);
      const outcome = retained?.has(key) ? 'its last good definition keeps serving' : 'it resolves with PARSE_ERROR';
      this.safeLog('warn', `rollout-guardian: flag "${key}" in ${snapshot.source} is invalid, ${outcome}:\n  ${where.join('\n  ')}`);
    }
  }

  private onStoreEvent(event: StoreEvent): void {
    if (this.closed) return;
    try {
      switch (event.type) {
        case 'change':
          this.onChange(event.snapshot);
          break;
        case 'invalid':
          this.safeLog('error', `rollout-guardian: ${event.message}`);
          this.events.emit(ProviderEvents.Error, { message: event.message });
          this.troubled = true;
          break;
        case 'unavailable':
          this.onUnavailable(event.error);
          break;
        case 'available':
          if (this.set === EMPTY_SET) this.loadLate();
          else this.recover();
          break;
      }
    } catch (err) {
      this.safeLog('error', `rollout-guardian: failed to handle a store event: ${String(err)}`);
    }
  }

  private onChange(snapshot: StoreSnapshot): void {
    const generation = ++this.compiling;
    if (snapshot.parsed.definitions.size <= COMPILED_AT_ONCE) {
      this.swapIn(snapshot, this.build(snapshot));
      return;
    }
    // A large set compiles a part per turn of the event loop, the old set serving meanwhile, so
    // a reload never stalls evaluations; a newer change or close() abandons it.
    const steps = buildFlagSetInSteps(snapshot.parsed, snapshot.state, this.clock.now(), this.set === EMPTY_SET ? undefined : this.set, snapshot.external, FLAGS_PER_TURN);
    const step = (): void => {
      if (this.closed || generation !== this.compiling) return;
      try {
        const next = steps.next();
        if (next.done === true) this.swapIn(snapshot, next.value);
        else setImmediate(step);
      } catch (err) {
        this.safeLog('error', `rollout-guardian: failed to compile the flags of ${snapshot.source}: ${String(err)}`);
      }
    };
    step();
  }

  private swapIn(snapshot: StoreSnapshot, built: ReturnType<typeof buildFlagSet>): void {
    const previous = this.set;
    const { set, retained } = built;
    this.set = set;
    this.serving = withRetained(snapshot.serving, this.serving, retained);
    const flagsChanged = changedFlags(previous, set);
    this.warnInvalid(snapshot, retained);
    if (flagsChanged.length > 0) this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged });
    if (retained.size > 0) {
      const message = `invalid definitions for ${[...retained.keys()].join(', ')} in ${snapshot.source}; their last good definitions keep serving`;
      this.events.emit(ProviderEvents.Error, { message });
      this.troubled = true;
    } else {
      this.recover();
    }
  }

  /** The first load failed; the store is back: load now (its change event may not come). */
  private loadLate(): void {
    this.store.load().then(
      (snapshot) => {
        if (!this.closed && this.set === EMPTY_SET) this.onChange(snapshot);
      },
      (err: unknown) => this.safeLog('error', `rollout-guardian: the flag store answered but the flags could not be loaded: ${String(err)}`),
    );
  }

  private onUnavailable(error: Error): void {
    if (this.errorTimer !== undefined) return;
    this.troubled = true;
    this.events.emit(ProviderEvents.Stale, { message: `flag store unavailable, serving the last snapshot: ${error.message}` });
    this.errorTimer = setTimeout(() => {
      this.events.emit(ProviderEvents.Error, { message: `flag store unavailable for ${this.errorGraceMs} ms: ${error.message}` });
    }, this.errorGraceMs);
    this.errorTimer.unref();
  }

  private recover(): void {
    if (this.errorTimer) clearTimeout(this.errorTimer);
    this.errorTimer = undefined;
    if (!this.troubled) return;
    this.troubled = false;
    this.events.emit(ProviderEvents.Ready);
  }

  private safeLog(level: 'warn' | 'error', message: string): void {
    try {
      this.logger[level](message);
    } catch {
      // A user's logger cannot break the provider.
    }
  }
}
