'use strict';
// The Nimbus API for a function with no network (see proxy.js): the invoker bind-mounts the
// gateway's unix API socket and this offers it on 127.0.0.1 at a port the kernel picks,
// bytes passed through untouched, half-closes included.

const fs = require('fs');
const net = require('net');

function refuse(conn, status, message) {
  const body = JSON.stringify({ error: message });
  const reason = status === 503 ? 'Service Unavailable' : 'Bad Gateway';
  conn.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Offer the unix socket `target` on 127.0.0.1, at most `limit` connections at once (extra
 * ones get a 503; a connection the socket refuses, a 502). Resolves to the URL, or null
 * when there is no socket to offer or no loopback to offer it on.
 */
function startApiForwarder(target, limit, log) {
  if (!target) return Promise.resolve(null);
  try {
    if (!fs.statSync(target).isSocket()) return Promise.resolve(null);
  } catch (_) {
    return Promise.resolve(null);
  }
  let count = 0;
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    if (count >= limit) {
      refuse(client, 503, `more than ${limit} concurrent Nimbus API connections`);
      return;
    }
    count += 1;
    client.setNoDelay(true);
    const upstream = net.connect({ path: target, allowHalfOpen: true });
    let connected = false;
    const done = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once('close', () => {
      count -= 1;
      upstream.destroy();
    });
    upstream.once('connect', () => {
      connected = true;
      client.pipe(upstream); // half-closes pass on: pipe ends the other side at EOF
      upstream.pipe(client);
    });
    upstream.on('error', (err) => {
      if (connected) {
        done();
        return;
      }
      log(`API forwarder: cannot reach ${target}: ${err.message}`);
      refuse(client, 502, `the Nimbus API is unreachable: ${err.message}`);
    });
    client.on('error', done);
  });
  return new Promise((resolve) => {
    server.once('error', (err) => {
      log(`cannot offer the Nimbus API on 127.0.0.1: ${err.message}`);
      resolve(null);
    });
    server.listen(0, '127.0.0.1', () => {
      server.unref();
      resolve(`http://127.0.0.1:${server.address().port}`);
    });
  });
}

module.exports = { startApiForwarder };
