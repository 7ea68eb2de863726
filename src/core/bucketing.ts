// flagd-compatible bucketing: MurmurHash3 x86_32 (seed 0) over the UTF-8 bytes of
// flagKey + targetingKey, bucket = (hash * total) >> 32. Percentages become integer weights
// out of 1,000,000, so the resolution is 0.0001% and the treatment owns buckets
// [0, weight): raising the weight never moves a user out of the treatment.
import { murmur3Utf8 } from './murmur3.js';

export const BUCKET_TOTAL = 1_000_000;
const TWO_POW_32 = 4294967296;

/** The integer weight (out of BUCKET_TOTAL) of a percentage from 0 to 100. */
export function percentageToWeight(percentage: number): number {
  return Math.min(BUCKET_TOTAL, Math.max(0, Math.round(percentage * (BUCKET_TOTAL / 100))));
}

export function weightToPercentage(weight: number): number {
  return weight / (BUCKET_TOTAL / 100);
}

/** `(hash * total) >> 32` for an unsigned 32-bit hash; exact in doubles while total < 2^21. */
export function bucketOf(hash: number, total: number): number {
  return Math.floor((hash * total) / TWO_POW_32);
}

/** Whether a hash falls in the treatment's buckets [0, weight) out of BUCKET_TOTAL. */
export function inTreatment(hash: number, weight: number): boolean {
  // floor(hash * T / 2^32) < weight  <=>  hash * T < weight * 2^32; both sides exact.
  return hash * BUCKET_TOTAL < weight * TWO_POW_32;
}

/** The bucket (0 .. total-1) of a user for a flag, as flagd computes it. */
export function bucketFor(flagKey: string, targetingKey: string, total: number = BUCKET_TOTAL): number {
  return bucketOf(murmur3Utf8(flagKey + targetingKey), total);
}
