// Numbers, dates and durations as people read them.

/** Epoch seconds -> "2024-05-01 12:00:03" in the browser's zone. */
export function time(epochSeconds) {
  if (epochSeconds === null || epochSeconds === undefined) return '—';
  const d = new Date(epochSeconds * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Milliseconds with a unit. */
export function ms(value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return '—';
  const n = Number(value);
  return n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(n < 10 ? 1 : 0)} ms`;
}

/** A money amount (the API sends decimal strings) in dollars, keeping small amounts readable. */
export function money(value) {
  const n = Number(value ?? 0);
  if (n === 0) return '$0';
  const sign = n < 0 ? '-' : '';
  const abs = Math.abs(n);
  if (abs >= 0.01) return `${sign}$${abs.toFixed(2)}`;
  // Per-call prices are millionths of a dollar: three significant digits, no exponent.
  const digits = Math.min(12, 2 - Math.floor(Math.log10(abs)));
  return `${sign}$${abs.toFixed(digits).replace(/0+$/, '')}`;
}

/** A plain number, compactly. */
export function number(value) {
  const n = Number(value ?? 0);
  return Number.isInteger(n) ? n.toLocaleString('en') : n.toPrecision(4).replace(/\.?0+$/, '');
}

/** Megabytes, as MB or GB. */
export function megabytes(mb) {
  const n = Number(mb ?? 0);
  return n >= 1024 ? `${(n / 1024).toFixed(n % 1024 ? 1 : 0)} GB` : `${Math.round(n)} MB`;
}

/** A UTC calendar date "YYYY-MM-DD" for a Date. */
export function isoDate(date) {
  return date.toISOString().slice(0, 10);
}

/** The `days` UTC dates ending today, oldest first. */
export function lastDays(days, now = new Date()) {
  const out = [];
  for (let i = days - 1; i >= 0; i -= 1) {
    out.push(isoDate(new Date(now.getTime() - i * 86400000)));
  }
  return out;
}
