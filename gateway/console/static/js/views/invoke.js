// The invoke form: a JSON event in, the result, logs, duration and cold or warm out.
// Timing and temperature come from the invoke response's headers, logs from the
// activation record it names.

import { fn } from '../api.js';
import { field, h, pretty, replace } from '../dom.js';
import { ms } from '../format.js';
import { href } from '../router.js';

function parseEvent(text) {
  if (!text.trim()) return {};
  const value = JSON.parse(text);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SyntaxError('the event must be a JSON object');
  }
  return value;
}

function outcomeView(name, resp, record) {
  const headers = resp.headers;
  const id = headers.get('X-Nimbus-Activation-Id');
  const cold = headers.get('X-Nimbus-Cold-Start') === 'true' || record?.cold_start === true;
  const status = record?.status ?? (resp.ok ? 'success' : resp.data?.error?.type ?? `HTTP ${resp.status}`);
  const facts = [
    ['Status', h('span', { class: `badge status-${status}` }, status)],
    ['Start', h('span', { class: `badge ${cold ? 'cold' : 'warm'}` }, cold ? 'cold' : 'warm')],
    ['Duration', ms(headers.get('X-Nimbus-Duration-Ms') ?? record?.duration_ms)],
    ['Init', ms(headers.get('X-Nimbus-Init-Ms') ?? record?.init_ms)],
    ['Activation', id ? h('a', { href: href('activations', null, { function: name, id }) }, id) : '—'],
  ];
  const result = resp.ok ? resp.data : resp.data?.error ?? resp.data;
  const logs = record?.logs ?? [];
  return [
    h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('h3', {}, resp.ok ? 'Result' : 'Error'),
    h('pre', { class: 'output', 'data-testid': 'invoke-result', tabindex: '0' }, pretty(result)),
    h('h3', {}, 'Logs'),
    h('pre', { class: 'output', 'data-testid': 'invoke-logs', tabindex: '0' }, logs.length ? logs.join('\n') : '(no output)'),
  ];
}

/** The invoke form for one function, as a section element. */
export function invokeSection(api, name) {
  const event = h('textarea', { id: 'invoke-event', rows: 6, spellcheck: 'false', value: '{}' });
  const error = h('p', { class: 'error', id: 'invoke-error', role: 'alert' });
  const output = h('div', { class: 'invoke-output', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit' }, 'Invoke');
  event.setAttribute('aria-describedby', 'invoke-event-hint invoke-error');
  const form = h('form', { class: 'stack', id: 'invoke-form' },
    field('Event (JSON object)', event, 'Sent as the body of POST /v1/functions/{name}/invoke.'),
    error, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    let body;
    try {
      body = parseEvent(event.value);
    } catch (exc) {
      error.textContent = `Not a JSON object: ${exc.message}`;
      event.focus();
      return;
    }
    button.disabled = true;
    replace(output, h('p', { class: 'note' }, 'Running…'));
    try {
      const resp = await api.request('POST', `${fn(name)}/invoke`, { body, allowError: true });
      const id = resp.headers.get('X-Nimbus-Activation-Id');
      const record = id ? (await api.request('GET', `/v1/activations/${encodeURIComponent(id)}`, { allowError: true })).data : null;
      if (!id && !resp.ok) throw new Error(resp.data?.error?.message ?? `HTTP ${resp.status}`);
      replace(output, outcomeView(name, resp, record?.activation_id ? record : null));
    } catch (exc) {
      replace(output);
      error.textContent = exc.message;
    } finally {
      button.disabled = false;
    }
  });
  return h('section', { 'aria-labelledby': 'invoke-title', class: 'panel' },
    h('h2', { id: 'invoke-title' }, 'Invoke'), form, output);
}
