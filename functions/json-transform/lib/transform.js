'use strict';
// Pure record reshaping: no I/O, so it can be tested on its own.

/** The value at a dotted path ("user.address.city") of an object; undefined if absent. */
function get(record, path) {
  return path.split('.').reduce((value, key) => (value == null ? undefined : value[key]), record);
}

function fail(message) {
  const err = new Error(message);
  err.name = 'BadEvent';
  throw err;
}

/**
 * records: an array of objects.
 * where:   {path: value} every kept record matches exactly (optional).
 * fields:  {output name: path} the shape of each record out (optional: unchanged).
 * sort_by: a path to sort by, "-path" for descending (optional).
 * limit:   at most this many records (optional).
 */
function transform({ records, where = {}, fields = null, sort_by: sortBy = null, limit = null }) {
  if (!Array.isArray(records)) fail('records must be an array of objects');
  if (typeof where !== 'object' || where === null) fail('where must be an object');
  if (fields !== null && (typeof fields !== 'object' || Array.isArray(fields))) {
    fail('fields must be an object of output name -> path');
  }
  let out = records.filter((record) =>
    Object.entries(where).every(([path, value]) => get(record, path) === value),
  );
  if (sortBy) {
    const descending = sortBy.startsWith('-');
    const path = descending ? sortBy.slice(1) : sortBy;
    out = out
      .map((record, index) => ({ record, index, key: get(record, path) }))
      .sort((a, b) => {
        if (a.key === b.key) return a.index - b.index; // stable, whatever the direction
        const order = a.key === undefined ? 1 : b.key === undefined ? -1 : a.key < b.key ? -1 : 1;
        return descending && a.key !== undefined && b.key !== undefined ? -order : order;
      })
      .map(({ record }) => record);
  }
  if (limit !== null) out = out.slice(0, Math.max(0, limit));
  if (fields) {
    out = out.map((record) =>
      Object.fromEntries(Object.entries(fields).map(([name, path]) => [name, get(record, path)])),
    );
  }
  return out;
}

module.exports = { get, transform };
