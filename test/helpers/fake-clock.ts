// A clock that moves only when a test moves it.
import type { Clock } from '../../src/core/clock.js';

export class FakeClock implements Clock {
  constructor(private ms: number = Date.parse('2026-11-27T12:00:00Z')) {}

  now(): number {
    return this.ms;
  }

  advance(ms: number): void {
    this.ms += ms;
  }

  set(ms: number): void {
    this.ms = ms;
  }
}
