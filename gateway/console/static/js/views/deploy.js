// The deploy form: name, runtime, handler, memory, timeout and the code as a file
// (.py / .js sent as source, .zip as base64), to PUT /v1/functions/{name}.

import { ApiError, fn } from '../api.js';
import { field, h, message, select } from '../dom.js';
import { href } from '../router.js';

const NAME_PATTERN = '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}';
const FALLBACK_RUNTIMES = ['python:3.11'];

/** The runtimes the API takes, read from its OpenAPI document. */
function runtimes(openapi) {
  const put = openapi?.paths?.['/v1/functions/{name}']?.put;
  const body = put?.requestBody?.content?.['application/json']?.schema;
  const found = body?.properties?.runtime?.enum;
  return Array.isArray(found) && found.length ? found : FALLBACK_RUNTIMES;
}

/** The file's contents as base64 (the browser encodes it: no copy through a JS string). */
function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(reader.error ?? new Error('the file could not be read'));
    reader.readAsDataURL(file);
  });
}

/** The `code` object for an uploaded file. */
export async function codeOf(file) {
  if (/\.zip$/i.test(file.name)) return { zip: await base64Of(file) };
  return { source: await file.text() };
}

function input(id, attrs) {
  return h('input', { id, name: id, ...attrs });
}

/** Render the deploy form (prefilled from the function when updating one). */
export async function render(root, { api, arg, openapi, announce, navigate }) {
  const existing = arg ? await api.get(fn(arg)) : null;
  const names = runtimes(openapi);
  const controls = {
    name: input('fn-name', { required: true, pattern: NAME_PATTERN, value: existing?.name ?? '', readonly: Boolean(existing), autocomplete: 'off' }),
    runtime: select('fn-runtime', names.map((r) => [r, r]), existing?.runtime ?? names[0]),
    handler: input('fn-handler', { required: true, value: existing?.handler ?? '', placeholder: 'main.handler', autocomplete: 'off' }),
    memory: input('fn-memory', { type: 'number', min: 128, max: 4096, step: 1, required: true, value: existing?.memory_mb ?? 128 }),
    timeout: input('fn-timeout', { type: 'number', min: 1, max: 900, step: 'any', required: true, value: existing?.timeout_s ?? 30 }),
    code: input('fn-code', { type: 'file', accept: '.py,.js,.zip', required: true }),
  };
  const error = h('p', { class: 'error', role: 'alert', id: 'deploy-error' });
  const button = h('button', { type: 'submit' }, existing ? 'Deploy new version' : 'Deploy');
  controls.code.addEventListener('change', () => {
    const file = controls.code.files[0];
    const module = file?.name.match(/^([A-Za-z_][A-Za-z0-9_]*)\.(py|js)$/);
    if (module && !controls.handler.value) controls.handler.value = `${module[1]}.handler`;
    if (file && /\.js$/i.test(file.name)) {
      const node = names.find((r) => r.startsWith('nodejs'));
      if (node) controls.runtime.value = node;
    }
  });
  const form = h('form', { class: 'stack', id: 'deploy-form', novalidate: false },
    field('Name', controls.name, 'Letters, digits, _ . - (up to 64), starting with a letter or digit.'),
    field('Runtime', controls.runtime),
    field('Handler', controls.handler, 'module.function, e.g. main.handler.'),
    h('div', { class: 'row' },
      field('Memory (MB)', controls.memory, '128 to 4096.'),
      field('Timeout (s)', controls.timeout, '1 to 900.')),
    field('Code', controls.code, 'One .py or .js file, or a .zip whose root holds the handler module.'),
    error, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!form.reportValidity()) return;
    const name = controls.name.value.trim();
    button.disabled = true;
    button.textContent = 'Deploying…';
    try {
      const body = {
        runtime: controls.runtime.value,
        handler: controls.handler.value.trim(),
        memory_mb: Number(controls.memory.value),
        timeout_s: Number(controls.timeout.value),
        code: await codeOf(controls.code.files[0]),
      };
      const saved = await api.put(fn(name), body);
      announce(`Deployed ${saved.name} version ${saved.version}`);
      navigate(href('functions', saved.name));
    } catch (exc) {
      error.textContent = exc.message;
      const target = exc instanceof ApiError ? fieldControl(controls, exc.field) : null;
      (target ?? controls.name).focus();
    } finally {
      button.disabled = false;
      button.textContent = existing ? 'Deploy new version' : 'Deploy';
    }
  });
  root.append(
    h('h1', { tabindex: '-1' }, existing ? `Update ${existing.name}` : 'Deploy a function'),
    existing ? message('A deploy replaces every setting and the code: choose the code file again.', 'note') : null,
    form,
  );
}

function fieldControl(controls, name) {
  const byField = { name: controls.name, runtime: controls.runtime, handler: controls.handler, memory_mb: controls.memory, timeout_s: controls.timeout };
  if (name?.startsWith('code')) return controls.code;
  return byField[name] ?? null;
}
