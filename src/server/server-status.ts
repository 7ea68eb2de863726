// What `serve` reports at /api/status: every rollout's status with the guardian's numbers,
// and the liveness facts `health` checks (last ticks, spans arriving, store trouble).
import type { OtlpIngestStats } from '../ingest/otlp-ingest.js';
import type { GuardianSpanProcessorStats } from '../guardian/guardian-span-processor.js';
import type { RolloutGuardian } from '../guardian/rollout-guardian.js';
import type { PlanRunner } from '../deploy/plan-runner.js';
import { type FlagStatusView, rolloutStatus } from '../deploy/rollout-status.js';
import type { StoreSnapshot } from '../stores/flag-store.js';
import type { LeaseStatus } from '../stores/redis-lease.js';

export interface ServerStatus {
  readonly generatedAt: string;
  readonly store: string;
  readonly storeTrouble: string | null;
  readonly slotMs: number;
  readonly guardianLastTick: string | null;
  readonly plansLastTick: string | null;
  readonly spans: GuardianSpanProcessorStats;
  /** What OTLP ingest received, recorded and refused (HTTP and gRPC). */
  readonly ingest: OtlpIngestStats;
  /** Whether this replica acts (holds the guardian lease) or stands by, and who holds it. */
  readonly lease: LeaseStatus;
  /** Outcomes recorded into any cohort over the last `recentWindowMs`: is telemetry arriving? */
  readonly recentOutcomes: number;
  readonly recentWindowMs: number;
  readonly flags: readonly FlagStatusView[];
}

export interface ServerStatusInput {
  readonly snapshot: StoreSnapshot;
  readonly nowMs: number;
  readonly guardian: RolloutGuardian;
  readonly plans: PlanRunner;
  readonly processor: GuardianSpanProcessorStats;
  readonly ingest: OtlpIngestStats;
  readonly lease: LeaseStatus;
  readonly storeTrouble: string | undefined;
  readonly slotMs: number;
  readonly recentOutcomes: number;
  readonly recentWindowMs: number;
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export function serverStatus(input: ServerStatusInput): ServerStatus {
  const judgments = new Map(input.guardian.status().map((s) => [s.flagKey, { judgment: s.judgment, judgedAtMs: s.judgedAtMs }]));
  return {
    generatedAt: new Date(input.nowMs).toISOString(),
    store: input.snapshot.source,
    storeTrouble: input.storeTrouble ?? null,
    slotMs: input.slotMs,
    guardianLastTick: iso(input.guardian.lastTick),
    plansLastTick: iso(input.plans.lastTick),
    spans: input.processor,
    ingest: input.ingest,
    lease: input.lease,
    recentOutcomes: input.recentOutcomes,
    recentWindowMs: input.recentWindowMs,
    flags: rolloutStatus(input.snapshot, input.nowMs, { judgments, notes: input.plans.notes() }),
  };
}
