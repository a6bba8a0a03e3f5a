// The tenant's bill for a period, per function and per day, as charts and tables.

import { withQuery } from '../api.js';
import { barChart, timeChart } from '../charts.js';
import { colourMap } from '../colors.js';
import { field, h, message, replace, select, table } from '../dom.js';
import { isoDate, lastDays, money, number } from '../format.js';

const RANGES = [['month', 'This month'], ['7', 'Last 7 days'], ['30', 'Last 30 days']];
const METRICS = {
  total: { label: 'Total cost', format: money },
  invocations: { label: 'Invocations', format: number },
  billed_gb_seconds: { label: 'Billed GB-s', format: number },
};

/** The API's query for a range choice: the month is the API's default range. */
export function rangeQuery(choice, now = new Date()) {
  if (choice === 'month') return {};
  const days = lastDays(Number(choice), now);
  return { from: days[0], to: days[days.length - 1] };
}

/** Every UTC day of a report's [from, to), so days without calls show as zero. */
export function daysOf(report) {
  const out = [];
  const end = new Date(report.to).getTime();
  for (let t = Date.parse(`${report.from.slice(0, 10)}T00:00:00Z`); t < end; t += 86400000) out.push(isoDate(new Date(t)));
  return out;
}

function linesTable(report, keyLabel) {
  const cols = [
    { label: keyLabel, value: (l) => l.key },
    { label: 'Invocations', value: (l) => number(l.invocations), numeric: true },
    { label: 'Billed GB-s', value: (l) => number(l.billed_gb_seconds), numeric: true },
    { label: 'Free requests', value: (l) => number(l.free_requests), numeric: true },
    { label: 'Request cost', value: (l) => money(l.request_cost), numeric: true },
    { label: 'Compute cost', value: (l) => money(l.compute_cost), numeric: true },
    { label: 'Total', value: (l) => money(l.total), numeric: true },
  ];
  return table(cols, [...report.lines, report.total], { caption: `${keyLabel} lines and total (${report.currency})` });
}

function byFunction(report, metric) {
  const { format, label } = METRICS[metric];
  const colours = colourMap(report.lines.map((l) => l.key));
  const items = report.lines
    .map((l) => ({ label: l.key, value: Number(l[metric]), colour: colours.get(l.key)[0] }))
    .sort((a, b) => b.value - a.value);
  return barChart(items, { format, label: `${label} per function` });
}

function byDay(report, metric) {
  const { format, label } = METRICS[metric];
  const values = new Map(report.lines.map((l) => [l.key, Number(l[metric])]));
  const days = daysOf(report);
  return timeChart(days, [{ name: label, colour: '#0072b2', values: days.map((d) => values.get(d) ?? 0) }], { format, label: `${label} per day` });
}

/** Render the bill view. */
export async function render(root, { api, profile }) {
  const range = select('bill-range', RANGES, 'month');
  const metric = select('bill-metric', Object.entries(METRICS).map(([k, m]) => [k, m.label]), 'total');
  const body = h('div', { id: 'bill-body', 'aria-live': 'polite' });
  let reports = null;

  const draw = () => {
    if (!reports) return;
    const [fnReport, dayReport] = reports;
    replace(body,
      h('p', { class: 'summary' },
        `${profile.tenant}: ${money(fnReport.total.total)} for ${number(fnReport.total.invocations)} invocations, `,
        `${fnReport.from.slice(0, 10)} to ${fnReport.to.slice(0, 10)} (${fnReport.currency}).`),
      h('section', { class: 'panel', 'aria-labelledby': 'bill-fn-title' },
        h('h2', { id: 'bill-fn-title' }, 'Per function'),
        fnReport.lines.length ? byFunction(fnReport, metric.value) : message('No calls in this period.', 'note'),
        linesTable(fnReport, 'Function')),
      h('section', { class: 'panel', 'aria-labelledby': 'bill-day-title' },
        h('h2', { id: 'bill-day-title' }, 'Per day'),
        byDay(dayReport, metric.value),
        linesTable(dayReport, 'Day')));
  };
  const load = async () => {
    const query = rangeQuery(range.value);
    try {
      reports = await Promise.all(['function', 'day'].map((g) => api.get(withQuery('/v1/billing', { ...query, group_by: g }))));
      draw();
    } catch (exc) {
      replace(body, message(exc.message));
    }
  };
  range.addEventListener('change', load);
  metric.addEventListener('change', draw);
  root.append(
    h('h1', { tabindex: '-1' }, 'Bill'),
    h('form', { class: 'filters', 'aria-label': 'Bill period and measure', onsubmit: (e) => e.preventDefault() },
      field('Period', range), field('Chart', metric)),
    body,
  );
  await load();
}
