// The notifier's counters in /metrics: per webhook target, events sent, failed, dropped and
// attempts retried, plus the queue waiting; read from its running totals at scrape time.
import type { BatchObservableResult, Meter } from '@opentelemetry/api';
import { ATTR_OUTCOME, ATTR_TARGET, METRICS, NOTIFICATION_OUTCOMES, type MetricSpec } from './names.js';

/** One target's totals: what Notifier.stats() returns for each. */
export interface NotificationTotals {
  readonly target: string;
  readonly sent: number;
  readonly failed: number;
  readonly dropped: number;
  readonly retried: number;
  readonly queued: number;
}

/** Registers the notification instruments on `meter`; returns what removes their callback. */
export function observeNotifications(
  meter: Meter,
  totals: () => readonly NotificationTotals[],
  onError: (err: unknown) => void,
): () => void {
  const spec = (s: MetricSpec) => ({ unit: s.unit, description: s.description });
  const counter = meter.createObservableCounter(METRICS.notifications.name, spec(METRICS.notifications));
  const queued = meter.createObservableGauge(METRICS.notificationsQueued.name, spec(METRICS.notificationsQueued));
  const callback = (result: BatchObservableResult) => {
    try {
      for (const t of totals()) {
        // Every outcome from the start, so the first failure shows as a rise, not a new series.
        for (const outcome of NOTIFICATION_OUTCOMES)
          result.observe(counter, t[outcome], { [ATTR_TARGET]: t.target, [ATTR_OUTCOME]: outcome });
        result.observe(queued, t.queued, { [ATTR_TARGET]: t.target });
      }
    } catch (err) {
      onError(err);
    }
  };
  meter.addBatchObservableCallback(callback, [counter, queued]);
  return () => meter.removeBatchObservableCallback(callback, [counter, queued]);
}
