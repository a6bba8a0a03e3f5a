// Charts drawn as SVG, sized by viewBox so they scale with the page. Each chart has a
// text alternative (aria-label) and the view shows the same numbers in a table.

import { s } from './dom.js';

const WIDTH = 640;

function niceMax(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * magnitude >= value) ?? 10;
  return step * magnitude;
}

/** Gridlines at round values: 5 steps of 0.2, 0.5 or 1 (x10^k), or 4 of 0.5 for a max of 2. */
function axisTicks(max) {
  const mantissa = max / 10 ** Math.floor(Math.log10(max));
  const count = Math.abs(mantissa - 2) < 1e-9 ? 4 : 5;
  return Array.from({ length: count + 1 }, (_, i) => (max * i) / count);
}

/**
 * Horizontal bars, one per item [{label, value}], longest first as given.
 * `format` renders a value; `label` describes the chart for screen readers.
 */
export function barChart(items, { format, label }) {
  const rowHeight = 28;
  const labelWidth = 170;
  const valueWidth = 90;
  const plot = WIDTH - labelWidth - valueWidth;
  const height = Math.max(1, items.length) * rowHeight + 8;
  const max = niceMax(Math.max(0, ...items.map((i) => i.value)));
  const svg = s('svg', { viewBox: `0 0 ${WIDTH} ${height}`, role: 'img', 'aria-label': label, class: 'chart' });
  items.forEach((item, index) => {
    const y = index * rowHeight + 4;
    const width = (Math.max(0, item.value) / max) * plot;
    svg.append(
      s('text', { x: labelWidth - 8, y: y + rowHeight / 2 + 4, 'text-anchor': 'end', class: 'chart-label' },
        item.label.length > 22 ? `${item.label.slice(0, 21)}…` : item.label),
      s('rect', { x: labelWidth, y: y + 3, width: Math.max(width, item.value > 0 ? 1 : 0), height: rowHeight - 8, fill: item.colour ?? '#0072b2' },
        s('title', {}, `${item.label}: ${format(item.value)}`)),
      s('text', { x: labelWidth + width + 6, y: y + rowHeight / 2 + 4, class: 'chart-value' }, format(item.value)),
    );
  });
  return svg;
}

/**
 * Vertical bars (or lines) over an ordered x axis: series [{name, colour, values}], all as
 * long as `xs`. With `kind: 'line'` each series is a polyline with points.
 */
export function timeChart(xs, series, { format, label, kind = 'bar' }) {
  const height = 260;
  const left = 90;
  const bottom = 40;
  const top = 12;
  const plotW = WIDTH - left - 10;
  const plotH = height - top - bottom;
  const max = niceMax(Math.max(0, ...series.flatMap((se) => se.values)));
  const svg = s('svg', { viewBox: `0 0 ${WIDTH} ${height}`, role: 'img', 'aria-label': label, class: 'chart' });
  const yOf = (v) => top + plotH - (Math.max(0, v) / max) * plotH;
  for (const tick of axisTicks(max)) {
    svg.append(
      s('line', { x1: left, x2: WIDTH - 10, y1: yOf(tick), y2: yOf(tick), class: 'grid' }),
      s('text', { x: left - 6, y: yOf(tick) + 4, 'text-anchor': 'end', class: 'chart-axis' }, format(tick)),
    );
  }
  const slot = plotW / Math.max(1, xs.length);
  const labelEvery = Math.ceil(xs.length / 8);
  xs.forEach((x, i) => {
    if (i % labelEvery === 0) {
      svg.append(s('text', { x: left + slot * (i + 0.5), y: height - bottom + 16, 'text-anchor': 'middle', class: 'chart-axis' }, x.slice(5)));
    }
  });
  series.forEach((se, k) => {
    if (kind === 'line') {
      const points = se.values.map((v, i) => `${left + slot * (i + 0.5)},${yOf(v)}`).join(' ');
      svg.append(s('polyline', { points, fill: 'none', stroke: se.colour, 'stroke-width': 2.5, 'stroke-dasharray': k % 2 ? '6 3' : null }));
      se.values.forEach((v, i) => svg.append(
        s('circle', { cx: left + slot * (i + 0.5), cy: yOf(v), r: 3.5, fill: se.colour }, s('title', {}, `${se.name} ${xs[i]}: ${format(v)}`)),
      ));
    } else {
      const barW = (slot * 0.8) / series.length;
      se.values.forEach((v, i) => svg.append(
        s('rect', { x: left + slot * (i + 0.1) + barW * k, y: yOf(v), width: barW, height: top + plotH - yOf(v), fill: se.colour },
          s('title', {}, `${se.name} ${xs[i]}: ${format(v)}`)),
      ));
    }
  });
  return svg;
}

/** A legend for colours: [{label, colour}]. */
export function legend(entries) {
  const list = document.createElement('ul');
  list.className = 'legend';
  for (const entry of entries) {
    const item = document.createElement('li');
    const swatch = s('svg', { viewBox: '0 0 12 12', width: 12, height: 12, 'aria-hidden': 'true' },
      s('rect', { width: 12, height: 12, fill: entry.colour, class: entry.hatched ? 'hatched' : null }));
    item.append(swatch, ` ${entry.label}`);
    list.append(item);
  }
  return list;
}
