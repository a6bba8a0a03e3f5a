// Stable colours for keys (functions, tenants): the same key gets the same colour on
// every view. A palette distinguishable under common colour-vision deficiencies (Okabe-Ito
// and Paul Tol's), each with a text colour that keeps a 4.5:1 contrast on it.

const PALETTE = [
  ['#0072b2', '#ffffff'],
  ['#e69f00', '#000000'],
  ['#009e73', '#000000'],
  ['#cc79a7', '#000000'],
  ['#56b4e9', '#000000'],
  ['#d55e00', '#000000'],
  ['#332288', '#ffffff'],
  ['#f0e442', '#000000'],
  ['#882255', '#ffffff'],
  ['#44aa99', '#000000'],
  ['#117733', '#ffffff'],
  ['#aa4499', '#ffffff'],
];

export const UNKNOWN = ['#8a8a8a', '#000000'];

function hash(text) {
  let value = 2166136261;
  for (let i = 0; i < text.length; i += 1) {
    value ^= text.charCodeAt(i);
    value = Math.imul(value, 16777619);
  }
  return value >>> 0;
}

/** [fill, text] for a key; keys seen together get distinct colours while the palette lasts. */
export function colourMap(keys) {
  const map = new Map();
  const used = new Set();
  for (const key of [...new Set(keys)].sort()) {
    let index = hash(key) % PALETTE.length;
    for (let step = 0; step < PALETTE.length && used.has(index); step += 1) {
      index = (index + 1) % PALETTE.length;
    }
    used.add(index);
    map.set(key, PALETTE[index]);
  }
  return map;
}

/** The two series colours of the economics chart. */
export const SERIES = { cost: '#d55e00', revenue: '#0072b2', margin: '#009e73' };
