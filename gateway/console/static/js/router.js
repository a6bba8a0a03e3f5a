// Views by location hash (#/functions, #/functions/NAME, ...): the hash holds view names
// and function names only, never a key.

/** {view, arg, params} of a hash such as "#/functions/hello" or "#/activations?function=a". */
export function parseHash(hash) {
  const [path, query = ''] = hash.replace(/^#\/?/, '').split('?');
  const [view, ...rest] = path.split('/');
  const arg = rest.length && rest.join('/') ? decodeURIComponent(rest.join('/')) : null;
  return { view: view || 'functions', arg, params: new URLSearchParams(query) };
}

/** The hash of a view, its argument and its parameters (those that are set). */
export function href(view, arg = null, params = {}) {
  const base = arg === null || arg === undefined ? `#/${view}` : `#/${view}/${encodeURIComponent(arg)}`;
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  return query ? `${base}?${query}` : base;
}

/**
 * Runs a poll function now and every `intervalMs` after the previous run ended, while the
 * page is visible; `stop()` ends it (a view calls it when it is left). With
 * `immediate: false` the first run waits one interval (the view has just loaded).
 */
export function poller(run, intervalMs, { immediate = true } = {}) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    if (!document.hidden) {
      try {
        await run();
      } catch {
        // The view shows its own errors; a failed poll is retried at the next tick.
      }
    }
    if (!stopped) timer = setTimeout(tick, intervalMs);
  };
  if (immediate) tick();
  else timer = setTimeout(tick, intervalMs);
  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
    now() {
      // Only while waiting: a run in progress is followed by the next one anyway.
      if (timer === null) return;
      clearTimeout(timer);
      tick();
    },
  };
}
