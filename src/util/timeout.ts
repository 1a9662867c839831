/**
 * `p`, or the error `onTimeout()` makes when `ms` pass first. The timer is cleared either way and
 * never keeps the process alive on its own; `p` itself is not cancelled (its caller owns that).
 */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
