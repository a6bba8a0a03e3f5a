// The tenant's functions, by name.

import { h, message, table } from '../dom.js';
import { megabytes, time } from '../format.js';
import { href } from '../router.js';

/** Render the function list into `root`. */
export async function render(root, { api }) {
  root.append(
    h('div', { class: 'title-row' },
      h('h1', { tabindex: '-1' }, 'Functions'),
      h('a', { href: href('deploy'), class: 'button' }, 'Deploy a function')),
  );
  const { functions } = await api.get('/v1/functions');
  if (!functions.length) {
    root.append(message('No functions yet: deploy one to get started.', 'note'));
    return;
  }
  root.append(table([
    { label: 'Name', value: (f) => h('a', { href: href('functions', f.name) }, f.name) },
    { label: 'Runtime', value: (f) => (f.sequence ? 'sequence' : f.runtime) },
    { label: 'Handler', value: (f) => f.handler ?? '—' },
    { label: 'Memory', value: (f) => megabytes(f.memory_mb), numeric: true },
    { label: 'Timeout', value: (f) => `${f.timeout_s} s`, numeric: true },
    { label: 'Version', value: (f) => f.version, numeric: true },
    { label: 'Updated', value: (f) => time(f.updated) },
  ], functions, { caption: `${functions.length} function${functions.length === 1 ? '' : 's'}` }));
}
