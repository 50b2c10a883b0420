// Waiting, with a timeout, for a condition over some state to hold: the owner of the state calls
// `changed()` after every change, and each waiter re-checks its own predicate then. Used where a
// request must wait for state that another flow moves (metadata offsets, replica syncs).
export class Conditions {
  private readonly waiters = new Set<() => void>();

  /** Resolves true once `holds()` is true, false after timeoutMs. */
  waitFor(holds: () => boolean, timeoutMs: number): Promise<boolean> {
    if (holds()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (result: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(result);
      };
      const check = (): void => {
        if (holds()) finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Re-checks every waiter's condition. */
  changed(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
