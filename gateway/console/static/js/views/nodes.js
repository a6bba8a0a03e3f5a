// Admin: the node pool as packed bins. Each node is a bar as wide as its memory, split
// into its containers (coloured by function or tenant); with ballooning, a container's
// solid part is the memory its limit holds now (deflated) and the pale part the rest of
// its full size.

import { legend } from '../charts.js';
import { colourMap, UNKNOWN } from '../colors.js';
import { field, h, message, replace, s, select, table } from '../dom.js';
import { megabytes, number } from '../format.js';
import { poller } from '../router.js';

const WIDTH = 640;
const BAR = 34;
const POLL_MS = 2000;

/**
 * A node's containers as [{id, tenant, function, full_mb, resident_mb}]: from
 * `container_details` when the gateway reports them, else the bare ids with the node's
 * allocation shared equally (who they serve is then unknown).
 */
export function containersOf(node) {
  if (Array.isArray(node.container_details)) {
    return node.container_details.map((c) => ({
      id: c.id,
      tenant: c.tenant ?? null,
      function: c.function ?? null,
      full_mb: Number(c.memory_mb ?? 0),
      resident_mb: Number(c.resident_mb ?? c.limit_mb ?? c.memory_mb ?? 0),
    }));
  }
  const ids = node.containers ?? [];
  const share = ids.length ? Number(node.allocated?.memory_mb ?? 0) / ids.length : 0;
  return ids.map((id) => ({ id, tenant: null, function: null, full_mb: share, resident_mb: share }));
}

function keyOf(container, by) {
  if (by === 'tenant') return container.tenant ?? 'unknown';
  return container.function ? `${container.tenant ?? '?'}/${container.function}` : 'unknown';
}

function nodeBar(node, containers, colours, by) {
  const capacity = Number(node.capacity?.memory_mb ?? 0) || 1;
  const scale = WIDTH / Math.max(capacity, containers.reduce((t, c) => t + c.full_mb, 0));
  const allocated = Number(node.allocated?.memory_mb ?? 0);
  const resident = node.resident?.memory_mb;
  const label = `${node.id}: ${megabytes(allocated)} of ${megabytes(capacity)} allocated`
    + (resident !== undefined ? `, ${megabytes(resident)} resident` : '') + `, ${containers.length} containers`;
  const svg = s('svg', { viewBox: `0 0 ${WIDTH} ${BAR}`, class: 'bin', role: 'img', 'aria-label': label, preserveAspectRatio: 'none' },
    s('rect', { x: 0, y: 0, width: WIDTH, height: BAR, class: 'bin-free' }));
  let x = 0;
  for (const c of containers) {
    const [fill] = colours.get(keyOf(c, by)) ?? UNKNOWN;
    const width = c.full_mb * scale;
    const solid = Math.min(c.resident_mb, c.full_mb) * scale;
    const title = s('title', {}, `${c.function ? `${c.tenant}/${c.function}` : 'function unknown'} · ${c.id} · ${megabytes(c.full_mb)} full, ${megabytes(c.resident_mb)} resident`);
    svg.append(s('g', { class: 'container', 'data-id': c.id },
      title,
      s('rect', { x, y: 0, width, height: BAR, fill, 'fill-opacity': 0.35 }),
      s('rect', { x, y: 0, width: solid, height: BAR, fill }),
      s('line', { x1: x + width, x2: x + width, y1: 0, y2: BAR, class: 'bin-edge' })));
    x += width;
  }
  return svg;
}

function nodeCard(node, colours, by) {
  const containers = containersOf(node);
  const vcpu = node.allocated?.vcpu ?? 0;
  const resident = node.resident?.memory_mb;
  return h('li', { class: 'node', 'data-node': node.id },
    h('div', { class: 'node-head' },
      h('strong', {}, node.id), ` ${node.flavor} · ${node.state} · `,
      `${megabytes(node.allocated?.memory_mb)} / ${megabytes(node.capacity?.memory_mb)}`,
      resident !== undefined ? ` (resident ${megabytes(resident)})` : '',
      ` · vCPU ${number(vcpu)} / ${number(node.capacity?.vcpu)}`,
      node.price_per_hour !== undefined ? ` · $${node.price_per_hour}/h` : ''),
    nodeBar(node, containers, colours, by));
}

function containerTable(nodes) {
  const rows = nodes.flatMap((n) => containersOf(n).map((c) => ({ node: n.id, ...c })));
  if (!rows.length) return message('No containers are running.', 'note');
  return table([
    { label: 'Node', value: (r) => r.node },
    { label: 'Container', value: (r) => r.id },
    { label: 'Tenant', value: (r) => r.tenant ?? '—' },
    { label: 'Function', value: (r) => r.function ?? '—' },
    { label: 'Full', value: (r) => megabytes(r.full_mb), numeric: true },
    { label: 'Resident', value: (r) => megabytes(r.resident_mb), numeric: true },
  ], rows, { caption: 'Containers by node' });
}

/** Render the node pool; returns its cleanup (stops polling). */
export async function render(root, { api }) {
  const by = select('colour-by', [['function', 'Function'], ['tenant', 'Tenant']], 'function');
  const summary = h('p', { class: 'summary', id: 'nodes-summary' });
  const pictures = h('div', { id: 'node-picture' });
  const details = h('details', {}, h('summary', {}, 'Containers as a table'));
  const detailsBody = h('div');
  details.append(detailsBody);
  let last = null;

  const draw = () => {
    if (!last) return;
    const nodes = last.nodes ?? [];
    const all = nodes.flatMap(containersOf);
    const colours = colourMap(all.map((c) => keyOf(c, by.value)));
    const packing = last.packing ?? {};
    replace(summary, `${last.provider} provider, ${nodes.length} node${nodes.length === 1 ? '' : 's'}`,
      last.enforced === undefined ? '' : last.enforced ? ' (limits enforced)' : ' (limits booked only)',
      packing.nodes_needed !== undefined && packing.nodes_needed !== null ? `; a fresh packing needs ${packing.nodes_needed} of ${packing.nodes_ready} ready.` : '.');
    replace(pictures,
      nodes.length ? h('ul', { class: 'nodes' }, nodes.map((n) => nodeCard(n, colours, by.value))) : message('No nodes: this deployment has no VM pool.', 'note'),
      legend([...colours.entries()].map(([label, [colour]]) => ({ label, colour })).concat(
        [{ label: 'free', colour: '#ffffff' }, { label: 'pale: full size above the resident (deflated) limit', colour: '#9bbbd8' }])));
    replace(detailsBody, containerTable(nodes));
  };
  by.addEventListener('change', draw);
  root.append(
    h('h1', { tabindex: '-1' }, 'Nodes'),
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault(), 'aria-label': 'Node picture options' }, field('Colour by', by)),
    summary, pictures, details,
  );
  last = await api.get('/v1/nodes');
  draw();
  const poll = poller(async () => {
    last = await api.get('/v1/nodes');
    draw();
  }, POLL_MS, { immediate: false });
  return () => poll.stop();
}
