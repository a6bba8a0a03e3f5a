// The HTTP API, called with the key as `Authorization: Bearer` (never in a URL).

/** An error answer, with the API's message and the field it names. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `the gateway answered HTTP ${status}`);
    this.status = status;
    this.field = body?.error?.field ?? null;
    this.body = body;
  }
}

function decode(text, contentType) {
  if (!text) return null;
  if (!contentType.includes('json')) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * A client bound to a key source. `onUnauthorized` runs when the gateway refuses the key
 * (it was revoked, or its tenant deleted) so the console can ask for a new one.
 */
export function createApi(keySource, onUnauthorized = () => {}) {
  /** One call: {status, data, headers}; throws ApiError on an error unless allowError. */
  async function request(method, path, { body, allowError = false, accept = 'application/json' } = {}) {
    const headers = { Accept: accept };
    const key = keySource();
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    const resp = await fetch(path, init);
    const data = decode(await resp.text(), resp.headers.get('Content-Type') ?? '');
    if (resp.status === 401 && key) onUnauthorized();
    if (!resp.ok && !allowError) throw new ApiError(resp.status, data);
    return { status: resp.status, ok: resp.ok, data, headers: resp.headers };
  }

  return {
    request,
    get: async (path) => (await request('GET', path)).data,
    put: async (path, body) => (await request('PUT', path, { body })).data,
    del: async (path) => (await request('DELETE', path)).data,
  };
}

/** A path with a query string of the parameters that are set. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** A function's path segment. */
export function fn(name) {
  return `/v1/functions/${encodeURIComponent(name)}`;
}
