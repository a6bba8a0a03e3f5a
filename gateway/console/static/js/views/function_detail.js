// One function: its settings, its code (when the API serves it), its versions and
// aliases (when the API has them), the invoke form, update and delete.

import { fn } from '../api.js';
import { h, message, pretty, table } from '../dom.js';
import { megabytes, time } from '../format.js';
import { href } from '../router.js';
import { invokeSection } from './invoke.js';

const CODE_PATH = '/v1/functions/{name}/code';

function settings(f) {
  const rows = [
    ['Runtime', f.sequence ? 'sequence' : f.runtime],
    ['Handler', f.handler ?? '—'],
    ['Version', f.version],
    ['Memory', megabytes(f.memory_mb)],
    ['Timeout', `${f.timeout_s} s`],
    ['Concurrency', f.concurrency],
    ['Code', f.code_kind ? `${f.code_kind}, ${f.code_size} bytes, sha256 ${String(f.code_sha256).slice(0, 12)}…` : '—'],
    ['Sequence', f.sequence ? f.sequence.join(' → ') : null],
    ['Environment', Object.keys(f.env ?? {}).length ? Object.keys(f.env).join(', ') : 'none'],
    ['Network', f.network ? 'yes' : 'no'],
    ['Web', f.web ? 'yes' : 'no'],
    ['Created', time(f.created)],
    ['Updated', time(f.updated)],
  ].filter(([, v]) => v !== null && v !== undefined);
  return h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
}

function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h('a', { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function base64Bytes(text) {
  const raw = atob(text);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function downloadCode(api, f) {
  const resp = await api.request('GET', `${fn(f.name)}/code`);
  const body = resp.data;
  const module = (f.handler ?? 'main.handler').split('.')[0];
  if (typeof body === 'object' && body !== null) {
    const code = body.code ?? body;
    if (typeof code.zip === 'string') return saveBlob(new Blob([base64Bytes(code.zip)], { type: 'application/zip' }), `${f.name}.zip`);
    if (typeof code.source === 'string') return saveBlob(new Blob([code.source], { type: 'text/plain' }), `${module}.py`);
  }
  return saveBlob(new Blob([typeof body === 'string' ? body : pretty(body)]), `${f.name}-code`);
}

/** A download button when the API documents a code endpoint; none otherwise. */
function codeButton(api, f, openapi) {
  if (!openapi?.paths?.[CODE_PATH]?.get || f.sequence) return null;
  const status = h('span', { role: 'status' });
  const button = h('button', { type: 'button', class: 'secondary' }, 'Download code');
  button.addEventListener('click', () => downloadCode(api, f).catch((exc) => { status.textContent = exc.message; }));
  return h('p', {}, button, ' ', status);
}

function listOf(data, name) {
  if (Array.isArray(data)) return data;
  if (Array.isArray(data?.[name])) return data[name];
  if (data?.[name] && typeof data[name] === 'object') {
    return Object.entries(data[name]).map(([key, value]) => ({ name: key, ...(typeof value === 'object' ? value : { version: value }) }));
  }
  return [];
}

function versionsTable(versions, latest) {
  return table([
    { label: 'Version', value: (v) => (v.version === latest ? `${v.version} (latest)` : v.version ?? '—'), numeric: true },
    { label: 'Handler', value: (v) => v.handler ?? '—' },
    { label: 'Memory', value: (v) => (v.memory_mb ? megabytes(v.memory_mb) : '—'), numeric: true },
    { label: 'Code', value: (v) => (v.code_sha256 ? `${String(v.code_sha256).slice(0, 12)}…` : '—') },
    { label: 'Aliases', value: (v) => (v.aliases?.length ? v.aliases.join(', ') : '—') },
    { label: 'Deployed', value: (v) => time(v.created) },
  ], versions, { caption: 'Versions, newest first' });
}

function aliasesTable(aliases) {
  const split = (a) => Object.entries(a.versions ?? {}).map(([v, w]) => `version ${v}: ${Math.round(w * 1000) / 10} %`).join(', ');
  const target = (a) => (a.version !== null && a.version !== undefined ? `version ${a.version}` : split(a) || '—');
  return table([
    { label: 'Alias', value: (a) => a.name ?? a.alias ?? '—' },
    { label: 'Points to', value: target },
  ], aliases, { caption: 'Aliases' });
}

function aliasesOrNone(aliases) {
  return aliases.length ? aliasesTable(aliases) : message('No aliases: calls run the latest version.', 'note');
}

/**
 * Versions and aliases, shown only where the API answers them: `GET .../versions`
 * answering 404 (no such endpoint yet) leaves the panel out.
 */
async function versionsPanel(api, name) {
  const versions = await api.request('GET', `${fn(name)}/versions`, { allowError: true });
  if (versions.status !== 200) return null;
  const aliases = await api.request('GET', `${fn(name)}/aliases`, { allowError: true });
  return h('section', { class: 'panel', 'aria-labelledby': 'versions-title', id: 'versions' },
    h('h2', { id: 'versions-title' }, 'Versions and aliases'),
    versionsTable(listOf(versions.data, 'versions'), versions.data?.latest),
    aliases.status === 200 ? aliasesOrNone(listOf(aliases.data, 'aliases')) : null);
}

function deleteButton(api, name, ctx) {
  const button = h('button', { type: 'button', class: 'danger' }, 'Delete function');
  button.addEventListener('click', async () => {
    if (!window.confirm(`Delete ${name} and its containers? This cannot be undone.`)) return;
    try {
      await api.del(fn(name));
      ctx.announce(`Deleted ${name}`);
      ctx.navigate(href('functions'));
    } catch (exc) {
      button.after(message(exc.message));
    }
  });
  return button;
}

/** Render one function's page. */
export async function render(root, ctx) {
  const { api, arg: name } = ctx;
  const f = await api.get(fn(name));
  root.append(
    h('p', { class: 'crumbs' }, h('a', { href: href('functions') }, 'Functions'), ' / ', name),
    h('div', { class: 'title-row' },
      h('h1', { tabindex: '-1' }, name),
      h('div', { class: 'actions' },
        f.sequence ? null : h('a', { href: href('deploy', name), class: 'button secondary' }, 'Update'),
        h('a', { href: href('activations', null, { function: name }), class: 'button secondary' }, 'Activations'),
        deleteButton(api, name, ctx))),
    h('section', { class: 'panel', 'aria-labelledby': 'settings-title' },
      h('h2', { id: 'settings-title' }, 'Settings'), settings(f), codeButton(api, f, ctx.openapi)),
  );
  const panel = await versionsPanel(api, name);
  if (panel) root.append(panel);
  root.append(invokeSection(api, name));
}
