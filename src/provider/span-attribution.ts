// The provider's half of attribution: it marks the active span with the OpenTelemetry
// feature-flag semantic conventions, which the guardian's span processor reads back to put
// the trace's outcome in the right cohort.
import { type Attributes, trace } from '@opentelemetry/api';
import {
  ATTR_FEATURE_FLAG_KEY,
  ATTR_FEATURE_FLAG_PROVIDER_NAME,
  ATTR_FEATURE_FLAG_RESULT_REASON,
  ATTR_FEATURE_FLAG_RESULT_VARIANT,
  EVENT_FEATURE_FLAG_EVALUATION,
  PROVIDER_NAME,
} from '../telemetry/names.js';

// Semantic conventions spell reasons in lower case; the standard ones are looked up rather
// than lower-cased on every evaluation.
const REASONS: ReadonlyMap<string, string> = new Map(
  ['STATIC', 'TARGETING_MATCH', 'SPLIT', 'DISABLED', 'DEFAULT', 'ERROR', 'CACHED', 'STALE', 'UNKNOWN'].map((r) => [r, r.toLowerCase()]),
);

/**
 * Marks the active recording span, if there is one, with the evaluation: attributes for
 * tools that read one flag per span, and a `feature_flag.evaluation` event so that every
 * flag evaluated on the span is kept. Never throws; without an active span it is one lookup.
 */
export function markActiveSpan(flagKey: string, variant: string | undefined, reason: string): void {
  try {
    const span = trace.getActiveSpan();
    if (span === undefined || !span.isRecording()) return;
    const attributes: Attributes = {
      [ATTR_FEATURE_FLAG_KEY]: flagKey,
      [ATTR_FEATURE_FLAG_PROVIDER_NAME]: PROVIDER_NAME,
      [ATTR_FEATURE_FLAG_RESULT_REASON]: REASONS.get(reason) ?? reason.toLowerCase(),
    };
    if (variant !== undefined) attributes[ATTR_FEATURE_FLAG_RESULT_VARIANT] = variant;
    span.setAttributes(attributes);
    span.addEvent(EVENT_FEATURE_FLAG_EVALUATION, attributes);
  } catch {
    // Telemetry must never break an evaluation.
  }
}
