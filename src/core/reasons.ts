// OpenFeature's resolution reasons and error codes, as plain strings so core stays free of
// the OpenFeature runtime; the values are the specification's.

export const Reason = {
  STATIC: 'STATIC',
  TARGETING_MATCH: 'TARGETING_MATCH',
  SPLIT: 'SPLIT',
  DISABLED: 'DISABLED',
  DEFAULT: 'DEFAULT',
  ERROR: 'ERROR',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export const ErrorCode = {
  FLAG_NOT_FOUND: 'FLAG_NOT_FOUND',
  TYPE_MISMATCH: 'TYPE_MISMATCH',
  PARSE_ERROR: 'PARSE_ERROR',
  GENERAL: 'GENERAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
