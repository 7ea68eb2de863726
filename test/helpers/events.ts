// Waiting for something to happen (an event, a condition) rather than for time to pass.
// The deadline only bounds a broken test; a passing one never waits for it.

export function nextEvent<T>(subscribe: (listener: (event: T) => void) => () => void, accept: (event: T) => boolean = () => true, timeoutMs = 5_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no matching event within ${timeoutMs} ms`));
    }, timeoutMs);
    const stop = subscribe((event) => {
      if (!accept(event)) return;
      clearTimeout(timer);
      stop();
      resolve(event);
    });
  });
}
