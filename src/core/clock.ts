// Time enters the system through a Clock so tests and the simulator can run days in
// milliseconds. core itself only ever receives `nowMs` as an argument.

export interface Clock {
  now(): number;
}
