// A browser tab for the kit's unit tests: location, history, sessionStorage,
// window events and fetch, each recording into one ordered log, so a test can
// say what happened and in which order.

export const API = 'https://api.example.test';

export function installTab(href = 'https://app.example.test/') {
  const log = [];
  const store = new Map();
  const listeners = new Map();
  const routes = [];
  const tab = {
    log,
    /** Requests as { method, url, path, headers, body }. */
    requests: [],
    navigations: [],
    location: {
      href,
      assign(url) {
        log.push(`assign ${url}`);
        tab.navigations.push(url);
      },
    },
    history: {
      state: null,
      replaceState(state, _title, url) {
        log.push(`replaceState ${url}`);
        tab.location.href = new URL(url, tab.location.href).href;
      },
    },
    sessionStorage: {
      getItem: (key) => (store.has(key) ? store.get(key) : null),
      setItem: (key, value) => store.set(key, String(value)),
      removeItem: (key) => store.delete(key),
    },
    store,
    /** Answers `method path` (path may be a RegExp) with a status and a JSON body. */
    answer(method, path, status, body, headers = {}) {
      routes.unshift({ method, path, status, body, headers });
    },
    dispatch(type, event) {
      for (const listener of listeners.get(type) || []) listener(event);
    },
    listenerCount: (type) => (listeners.get(type) || []).length,
  };
  Object.assign(globalThis, {
    location: tab.location,
    history: tab.history,
    sessionStorage: tab.sessionStorage,
    addEventListener(type, listener) {
      listeners.set(type, [...(listeners.get(type) || []), listener]);
    },
    removeEventListener(type, listener) {
      listeners.set(type, (listeners.get(type) || []).filter((l) => l !== listener));
    },
    async fetch(url, init = {}) {
      const parsed = new URL(url);
      const request = {
        method: init.method || 'GET',
        url,
        path: parsed.pathname + parsed.search,
        headers: init.headers || {},
        body: init.body === undefined ? undefined : JSON.parse(init.body),
        credentials: init.credentials,
      };
      tab.requests.push(request);
      log.push(`fetch ${request.method} ${request.path}`);
      const route = routes.find((r) => r.method === request.method
        && (r.path instanceof RegExp ? r.path.test(request.path) : r.path === request.path));
      if (!route) throw new TypeError(`fetch failed: nothing answers ${request.method} ${request.path}`);
      const problem = route.status >= 400;
      return new Response(JSON.stringify(typeof route.body === 'function' ? route.body(request) : route.body), {
        status: route.status,
        headers: { 'content-type': problem ? 'application/problem+json' : 'application/json', ...route.headers },
      });
    },
  });
  return tab;
}

export function problem(status, slug, detail = `a ${slug}`) {
  return { type: `/problems/${slug}`, title: slug.replace(/-/g, ' '), status, detail };
}

export function consent(id, fields = {}) {
  const now = '2026-12-07T12:00:00Z';
  return {
    consent_id: id,
    status: 'authorized',
    provider: 'sandbox-hsbc',
    bank_name: 'HSBC UK',
    created_at: now,
    updated_at: now,
    authorized_at: now,
    revoke_requested_at: null,
    revoked_at: null,
    expires_at: null,
    confirm_by: now,
    confirmed_at: null,
    revoke_reason: null,
    renewed_at: null,
    reconfirm_by: null,
    expiry_reminder_at: null,
    history: [{ at: now, from: null, to: 'new', source: 'create' }],
    ...fields,
  };
}

/** A 43-character base64url code, unique per call. */
let codes = 0;
export function newCode() {
  codes += 1;
  return `code${String(codes).padStart(4, '0')}`.padEnd(43, 'x');
}
