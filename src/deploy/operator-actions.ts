// The operator's actions on one flag (deploy, pause, resume, promote, abort, rollback,
// override, clear-override, reset-state) run on a store with an actor and a reason, and answered with the
// report the CLI prints, as text and as its --json document. The CLI and the control API both
// act through runOperatorAction, so a change means the same whichever way it comes in.
import type { Clock } from '../core/clock.js';
import { formatDurationMs } from '../core/duration.js';
import type { PlanState } from '../core/flag-schema.js';
import type { Attribution, AuditEntry, FlagStore, StoreSnapshot, WriteResult } from '../stores/flag-store.js';
import { StoreWriter, knownFlag } from '../stores/store-writer.js';
import { differenceLines, differences, percentText, table } from './change-text.js';
import { type CustomPlan, type ScheduledStep, type PlanStep, type Strategy, PlanError, planSchedule } from './plan.js';
import { PlanWriter } from './plan-writer.js';

export const OPERATOR_ACTIONS = ['deploy', 'pause', 'resume', 'promote', 'abort', 'rollback', 'override', 'clear-override', 'reset-state'] as const;
export type OperatorAction = (typeof OPERATOR_ACTIONS)[number];
export const PLAN_COMMANDS = ['pause', 'resume', 'promote', 'abort', 'rollback'] as const;
export type PlanCommand = (typeof PLAN_COMMANDS)[number];

export type ActionRequest =
  | { readonly action: 'deploy'; readonly strategy: Strategy; readonly steps: readonly PlanStep[]; readonly dryRun?: boolean; /** custom: what was asked for, to send on as it was given. */ readonly custom?: CustomPlan }
  | { readonly action: PlanCommand | 'clear-override' | 'reset-state' }
  | { readonly action: 'override'; readonly variant: string };

/** The flag's state refuses the action (no plan, a plan already running, an invalid flag); nothing was written. */
export class ActionRefusedError extends Error {
  override readonly name = 'ActionRefusedError';
}

/** What a mutation prints with --json. */
export interface MutationReport {
  readonly store: string;
  readonly action: string;
  readonly flag: string;
  /** false when there was nothing to change (and nothing was written). */
  readonly changed: boolean;
  readonly revision: string;
  /** The audit entry the change wrote, or null. */
  readonly entry: AuditEntry | null;
}

/** What `deploy --dry-run --json` prints. */
export interface DryRunReport {
  readonly store: string;
  readonly flag: string;
  readonly dryRun: true;
  readonly plan: PlanState;
  readonly schedule: readonly ScheduledStep[];
}

export interface ActionOutcome {
  /** The text the CLI prints. */
  readonly message: string;
  /** The document the CLI prints with --json. */
  readonly report: MutationReport | DryRunReport;
  /** The audit entry written, or null (a dry run, nothing to change). */
  readonly entry: AuditEntry | null;
}

/** A plan's steps as the table deploy prints: when each starts if every step stays healthy. */
export function scheduleText(plan: PlanState, nowMs: number): string {
  const rows = planSchedule(plan, nowMs).map((s) => [
    `${s.index + 1}`,
    percentText(s.percentage),
    s.state === 'done' ? 'done' : s.state === 'current' ? `now (since ${new Date(s.startsAtMs).toISOString()})` : `${new Date(s.startsAtMs).toISOString()}  (in ${formatDurationMs(Math.max(0, s.startsAtMs - nowMs))})`,
    formatDurationMs(plan.steps[s.index]?.holdMs ?? 0),
  ]);
  return table(['STEP', 'PERCENT', 'STARTS (if every step stays healthy)', 'MONITORED'], rows);
}

function planReport(source: string, flagKey: string, action: string, result: WriteResult, nowMs: number): ActionOutcome {
  const entry = result.entries.find((e) => e.flagKey === flagKey) ?? null;
  const plan = action === 'deploy' ? entry?.after.state?.plan : undefined;
  const extra = plan ? scheduleText(plan, nowMs) : '';
  // The schedule says more than a diff of a new plan object would.
  const diffs = entry ? differences(entry.before.state, entry.after.state, 'state').filter((d) => !d.path.startsWith('state.plan.steps') && !(extra !== '' && d.path === 'state.plan')) : [];
  return {
    message: `${flagKey}: ${action} by ${entry?.actor ?? '?'} (${JSON.stringify(entry?.reason ?? '')}), recorded in the audit log\n${differenceLines(diffs)}${extra}`,
    report: { store: source, action, flag: flagKey, changed: entry !== null, revision: result.revision, entry },
    entry,
  };
}

function flagReport(source: string, flagKey: string, action: string, result: WriteResult | undefined, snapshot: StoreSnapshot): ActionOutcome {
  const entry = result?.entries.find((e) => e.flagKey === flagKey) ?? null;
  const report: MutationReport = { store: source, action, flag: flagKey, changed: entry !== null, revision: result?.revision ?? snapshot.revision, entry };
  if (entry === null) return { message: `${flagKey}: nothing to ${action}; nothing was written\n`, report, entry };
  const diffs = [...differences(entry.before.definition, entry.after.definition, 'definition'), ...differences(entry.before.state, entry.after.state, 'state')];
  return { message: `${flagKey}: ${action} by ${entry.actor} (${JSON.stringify(entry.reason)}), recorded in the audit log\n${differenceLines(diffs)}`, report, entry };
}

/** Refuses an action on a flag that is unknown (UnknownFlagError) or invalid (ActionRefusedError). */
export function refuseInvalid(snapshot: StoreSnapshot, flagKey: string, what: string): void {
  knownFlag(snapshot, flagKey);
  if (snapshot.parsed.invalid.has(flagKey)) {
    const lines = snapshot.flagErrors?.get(flagKey) ?? [];
    throw new ActionRefusedError(`flag "${flagKey}" is invalid, so it cannot ${what} until it is fixed (rollout-guardian validate):${lines.map((l) => `\n  ${l}`).join('')}`);
  }
}

/**
 * Runs one action on `flagKey` as `by`. Throws UnknownFlagError for a flag the store does not
 * know, ActionRefusedError when the flag's state refuses it, and the store's own errors
 * (InvalidWriteError, RevisionConflictError, ...) when the write does not land.
 */
export async function runOperatorAction(store: FlagStore, clock: Clock, flagKey: string, request: ActionRequest, by: Attribution): Promise<ActionOutcome> {
  const snapshot = await store.load();
  try {
    switch (request.action) {
      case 'deploy': {
        knownFlag(snapshot, flagKey);
        if (request.dryRun === true) {
          const now = clock.now();
          const at = new Date(now).toISOString();
          const plan: PlanState = { strategy: request.strategy, steps: [...request.steps], stepIndex: 0, status: 'running', startedAt: at, stepStartedAt: at, pausedMs: 0 };
          return {
            message: `${flagKey}: dry run of a ${request.strategy} plan; nothing was written\n${scheduleText(plan, now)}Run \`rollout-guardian serve --dry-run\` to have the guardian judge it live without acting.\n`,
            report: { store: store.source, flag: flagKey, dryRun: true, plan, schedule: planSchedule(plan, now) },
            entry: null,
          };
        }
        const result = await new PlanWriter(store, clock).deploy(flagKey, request.strategy, request.steps, by);
        return planReport(store.source, flagKey, 'deploy', result, clock.now());
      }
      case 'override':
        refuseInvalid(snapshot, flagKey, 'be overridden');
        return flagReport(store.source, flagKey, 'override', await new StoreWriter(store, clock).override(flagKey, request.variant, by), snapshot);
      case 'clear-override':
        refuseInvalid(snapshot, flagKey, 'have its override cleared');
        return flagReport(store.source, flagKey, 'clear-override', await new StoreWriter(store, clock).clearOverride(flagKey, by), snapshot);
      case 'reset-state':
        // Not refused on an invalid flag: clearing a rollback is how an SRE gets back to what the file says.
        knownFlag(snapshot, flagKey);
        return flagReport(store.source, flagKey, 'reset-state', await new StoreWriter(store, clock).resetState(flagKey, by), snapshot);
      default: {
        knownFlag(snapshot, flagKey);
        const plans = new PlanWriter(store, clock);
        const action: PlanCommand = request.action;
        const result = await plans[action](flagKey, by);
        return planReport(store.source, flagKey, action, result, clock.now());
      }
    }
  } catch (err) {
    if (err instanceof PlanError) throw new ActionRefusedError(err.message, { cause: err });
    throw err;
  }
}
