'use strict';
// Per-activation output capture for the Nimbus Node.js proxy (see proxy.js).

const { AsyncLocalStorage } = require('async_hooks');

const LOG_LIMIT = parseInt(process.env.NIMBUS_LOG_LIMIT || '', 10) || 1024 * 1024;

/** One activation's output: both streams, in write order, up to LOG_LIMIT characters. */
class Capture {
  constructor() {
    this.parts = [];
    this.size = 0;
    this.truncated = false;
    this.open = true; // false once the reply is built: later output goes to the real streams
    this.fail = null; // set while the activation runs: fails it from an uncaught error
  }

  add(text) {
    if (this.size >= LOG_LIMIT) {
      this.truncated = true;
      return;
    }
    this.parts.push(text);
    this.size += text.length;
  }

  lines() {
    const lines = this.parts.join('').split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    if (this.truncated) lines.push(`[nimbus] logs truncated at ${LOG_LIMIT} characters`);
    return lines;
  }
}

const activations = new AsyncLocalStorage();

/** Route writes on a stream to the current activation's capture, if it has one. */
function routeWrites(stream) {
  const real = stream.write.bind(stream);
  stream.write = function write(chunk, encoding, callback) {
    const capture = activations.getStore();
    if (capture === undefined || !capture.open) return real(chunk, encoding, callback);
    if (typeof encoding === 'function') callback = encoding;
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    capture.add(text);
    if (typeof callback === 'function') process.nextTick(callback);
    return true;
  };
  return real;
}

module.exports = { Capture, activations, routeWrites };
