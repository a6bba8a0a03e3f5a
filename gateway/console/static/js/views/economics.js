// Admin: the provider's economics over time, VM cost against billed revenue per day
// (one `GET /v1/admin/economics` per UTC day, a few at a time).

import { withQuery } from '../api.js';
import { legend, timeChart } from '../charts.js';
import { SERIES } from '../colors.js';
import { field, h, message, replace, select, table } from '../dom.js';
import { lastDays, money, number } from '../format.js';

const RANGES = [['7', 'Last 7 days'], ['14', 'Last 14 days'], ['30', 'Last 30 days']];
const AT_ONCE = 4;

/** Run `work` over `items` with at most `limit` in flight; results in order. */
export async function mapLimited(items, limit, work) {
  const results = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await work(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

function percent(value) {
  return value === null || value === undefined ? '—' : `${(Number(value) * 100).toFixed(1)} %`;
}

/** Render the economics view. */
export async function render(root, { api }) {
  const range = select('econ-range', RANGES, '7');
  const body = h('div', { id: 'econ-body', 'aria-live': 'polite' });

  const load = async () => {
    replace(body, message('Loading…', 'note'));
    const days = lastDays(Number(range.value));
    try {
      const [daily, overall] = await Promise.all([
        mapLimited(days, AT_ONCE, (d) => api.get(withQuery('/v1/admin/economics', { from: d, to: d }))),
        api.get(withQuery('/v1/admin/economics', { from: days[0], to: days[days.length - 1] })),
      ]);
      const series = [
        { name: 'VM cost', colour: SERIES.cost, values: daily.map((e) => Number(e.overall.vm_cost)) },
        { name: 'Billed revenue', colour: SERIES.revenue, values: daily.map((e) => Number(e.overall.revenue)) },
      ];
      const o = overall.overall;
      replace(body,
        h('p', { class: 'summary' },
          `${days[0]} to ${days[days.length - 1]}: VM cost ${money(o.vm_cost)}, revenue ${money(o.revenue)}, `,
          `margin ${money(o.margin)}, ${number(o.vm_hours)} VM-hours, utilisation ${percent(o.utilisation)}.`),
        h('section', { class: 'panel', 'aria-labelledby': 'econ-chart-title' },
          h('h2', { id: 'econ-chart-title' }, 'VM cost and billed revenue per day'),
          timeChart(days, series, { format: money, label: 'VM cost and billed revenue per day', kind: 'line' }),
          legend(series.map((se) => ({ label: se.name, colour: se.colour })))),
        table([
          { label: 'Day', value: (r) => r.day },
          { label: 'VM-hours', value: (r) => number(r.e.overall.vm_hours), numeric: true },
          { label: 'VM cost', value: (r) => money(r.e.overall.vm_cost), numeric: true },
          { label: 'Revenue', value: (r) => money(r.e.overall.revenue), numeric: true },
          { label: 'Margin', value: (r) => money(r.e.overall.margin), numeric: true },
          { label: 'Utilisation', value: (r) => percent(r.e.overall.utilisation), numeric: true },
        ], days.map((day, i) => ({ day, e: daily[i] })), { caption: `Per day (${overall.currency})` }));
    } catch (exc) {
      replace(body, message(exc.message));
    }
  };
  range.addEventListener('change', load);
  root.append(
    h('h1', { tabindex: '-1' }, 'Economics'),
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault(), 'aria-label': 'Economics period' }, field('Period', range)),
    body,
  );
  await load();
}
