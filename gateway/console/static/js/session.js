// The caller's key and role, kept in this tab's sessionStorage only: never in a URL,
// a cookie, localStorage or a log. Closing the tab forgets them.

const KEY = 'nimbus.console.key';
const PROFILE = 'nimbus.console.profile';

/** The stored API key, or null. */
export function storedKey() {
  return sessionStorage.getItem(KEY);
}

/** {admin, tenant} of the stored key, or null. */
export function storedProfile() {
  try {
    return JSON.parse(sessionStorage.getItem(PROFILE) ?? 'null');
  } catch {
    return null;
  }
}

/** Keep a key that was just checked, and what it is. */
export function remember(key, profile) {
  sessionStorage.setItem(KEY, key);
  sessionStorage.setItem(PROFILE, JSON.stringify(profile));
}

/** Forget the key (log out, or the gateway stopped accepting it). */
export function forget() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(PROFILE);
}

/**
 * Who a key belongs to: a 401 means no one; an admin-only read (`GET /v1/tenants`)
 * answers 200 to the admin and 403 to a tenant. The bill names the caller's tenant.
 */
export async function identify(api) {
  const bill = await api.get('/v1/billing');
  const probe = await api.request('GET', '/v1/tenants', { allowError: true });
  return { admin: probe.status === 200, tenant: bill.tenant };
}
