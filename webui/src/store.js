// A tiny observable value and the hook that re-renders a component when it changes.
import { useEffect, useState } from "preact/hooks";

export function createStore(initial) {
  let state = initial;
  const subscribers = new Set();
  return {
    get: () => state,
    set(next) {
      state = typeof next === "function" ? next(state) : next;
      for (const fn of [...subscribers]) fn(state);
    },
    subscribe(fn) {
      subscribers.add(fn);
      return () => subscribers.delete(fn);
    },
  };
}

export function useStore(store) {
  const [, force] = useState(0);
  useEffect(() => {
    const seen = store.get();
    const off = store.subscribe(() => force((n) => n + 1));
    if (store.get() !== seen) force((n) => n + 1);
    return off;
  }, [store]);
  return store.get();
}
