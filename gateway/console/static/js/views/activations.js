// Activations, newest first, filtered by function and status, refreshed every 2 s while
// the view is open; one activation's result and logs below the list.

import { withQuery } from '../api.js';
import { field, h, message, pretty, replace, select, table } from '../dom.js';
import { ms, time } from '../format.js';
import { href, poller } from '../router.js';

const STATUSES = ['success', 'application_error', 'timeout', 'platform_error', 'pending', 'running'];
const POLL_MS = 2000;
const PAGE = 100;

function badge(status) {
  return h('span', { class: `badge status-${status}` }, status.replace('_', ' '));
}

function details(record) {
  const failed = record.status !== 'success' && record.error;
  return [
    h('h2', { id: 'activation-title', tabindex: '-1' }, `Activation ${record.activation_id}`),
    h('dl', { class: 'facts' }, [
      ['Function', `${record.function} (version ${record.version})`],
      ['Status', badge(record.status)],
      ['Start', record.cold_start ? 'cold' : 'warm'],
      ['Started', time(record.start)],
      ['Duration', ms(record.duration_ms)],
      ['Init', ms(record.init_ms)],
      ['Waited', ms(record.wait_ms)],
      ['Memory', record.peak_memory_mb ? `${Math.round(record.peak_memory_mb)} MB peak of ${record.memory_mb} MB` : `${record.memory_mb} MB`],
      ['Node', record.node ?? '—'],
      ['Attempts', record.attempts ?? 1],
    ].map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('h3', {}, failed ? 'Error' : 'Result'),
    h('pre', { class: 'output', tabindex: '0', 'data-testid': 'activation-result' }, failed ? record.error : pretty(record.result)),
    h('h3', {}, 'Logs'),
    h('pre', { class: 'output', tabindex: '0', 'data-testid': 'activation-logs' }, record.logs?.length ? record.logs.join('\n') : '(no output)'),
  ];
}

/** Render the activations view; returns its cleanup (stops polling). */
export async function render(root, { api, params, navigate }) {
  const state = { fn: params.get('function') ?? '', status: params.get('status') ?? '', id: params.get('id') ?? '' };
  const { functions } = await api.get('/v1/functions');
  const fnSelect = select('filter-function', [['', 'All functions'], ...functions.map((f) => [f.name, f.name])], state.fn);
  const statusSelect = select('filter-status', [['', 'Any status'], ...STATUSES.map((s) => [s, s.replace('_', ' ')])], state.status);
  const live = h('input', { type: 'checkbox', id: 'live', checked: true });
  const updated = h('span', { class: 'hint', id: 'updated' });
  const list = h('div', { id: 'activation-list' });
  const detail = h('section', { class: 'panel', id: 'activation-detail', 'aria-labelledby': 'activation-title', hidden: true });
  let signature = '';
  let selectedStatus = null; // none shown yet: the first refresh shows the selected one

  const syncHash = () => navigate(href('activations', null, { function: state.fn, status: state.status, id: state.id }), { quiet: true });

  async function showDetail(focus) {
    if (!state.id) {
      detail.hidden = true;
      return;
    }
    const record = await api.get(`/v1/activations/${encodeURIComponent(state.id)}`).catch((exc) => exc);
    replace(detail, ...(record instanceof Error ? [h('h2', { id: 'activation-title' }, 'Activation'), message(record.message)] : details(record)));
    detail.hidden = false;
    if (focus) detail.querySelector('h2').focus();
  }

  function rows(activations) {
    return table([
      { label: 'Started', value: (a) => time(a.start) },
      { label: 'Function', value: (a) => a.function },
      { label: 'Status', value: (a) => badge(a.status) },
      { label: 'Duration', value: (a) => ms(a.duration_ms), numeric: true },
      { label: 'Start', value: (a) => (a.status === 'pending' ? '—' : a.cold_start ? 'cold' : 'warm') },
      {
        label: 'Activation',
        value: (a) => h('button', {
          type: 'button', class: 'link', 'aria-pressed': String(a.activation_id === state.id), 'data-id': a.activation_id,
          onclick: () => { state.id = a.activation_id; selectedStatus = a.status; syncHash(); showDetail(true); refresh(true); },
        }, a.activation_id.slice(0, 12)),
      },
    ], activations, { caption: 'Newest first', rowAttrs: (a) => ({ class: a.activation_id === state.id ? 'selected' : null }) });
  }

  async function refresh(force = false) {
    const data = await api.get(withQuery('/v1/activations', { function: state.fn, limit: PAGE }));
    const shown = data.activations.filter((a) => !state.status || a.status === state.status);
    const next = `${state.id}|${shown.map((a) => `${a.activation_id}:${a.status}`).join(',')}`;
    updated.textContent = `Updated ${time(Date.now() / 1000).slice(11)}`;
    if (next === signature && !force) return;
    signature = next;
    // Rebuilt only when something changed, so keyboard focus in the table survives polls.
    const focusedId = document.activeElement?.dataset?.id;
    replace(list, shown.length ? rows(shown) : message('No activations match.', 'note'));
    if (focusedId) list.querySelector(`[data-id="${CSS.escape(focusedId)}"]`)?.focus();
    const selected = shown.find((a) => a.activation_id === state.id)?.status;
    if (state.id && selected !== selectedStatus) {
      selectedStatus = selected; // a selected call that finished shows its result and logs
      showDetail(false);
    }
  }

  const onFilter = () => {
    state.fn = fnSelect.value;
    state.status = statusSelect.value;
    syncHash();
    refresh(true);
  };
  fnSelect.addEventListener('change', onFilter);
  statusSelect.addEventListener('change', onFilter);

  root.append(
    h('h1', { tabindex: '-1' }, 'Activations'),
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter activations', onsubmit: (e) => e.preventDefault() },
      field('Function', fnSelect), field('Status', statusSelect),
      h('div', { class: 'field checkbox' }, live, h('label', { for: 'live' }, 'Live (every 2 s)')), updated),
    list, detail,
  );
  let poll = poller(() => refresh(), POLL_MS);
  live.addEventListener('change', () => {
    poll.stop();
    poll = live.checked ? poller(() => refresh(), POLL_MS) : { stop() {} };
  });
  return () => poll.stop();
}
