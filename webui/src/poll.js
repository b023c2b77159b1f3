// usePoll(fn, ms, deps): run fn now and then every ms after the previous run ended, while
// the component is mounted (skipping hidden tabs). Returns refresh(): run it now.
import { useEffect, useRef } from "preact/hooks";

export function usePoll(fn, intervalMs, deps = []) {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const refreshRef = useRef(() => {});

  useEffect(() => {
    let stopped = false;
    let timer = null;
    let running = false;
    let again = false;

    async function run() {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      clearTimeout(timer);
      if (document.hidden) {
        timer = setTimeout(run, intervalMs);
        return;
      }
      running = true;
      try {
        await fnRef.current();
      } catch (err) {
        console.warn("poll failed", err);
      } finally {
        running = false;
      }
      if (stopped) return;
      if (again) {
        again = false;
        run();
        return;
      }
      if (intervalMs) timer = setTimeout(run, intervalMs);
    }

    const onVisible = () => {
      if (!document.hidden) run();
    };
    refreshRef.current = run;
    document.addEventListener("visibilitychange", onVisible);
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisible);
      refreshRef.current = () => {};
    };
  }, deps);

  return () => refreshRef.current();
}
