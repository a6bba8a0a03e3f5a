'use strict';
// The HTTP side of the Nimbus Node.js proxy (see proxy.js): listening, the routes, the
// proxy token, and the JSON replies. crypto is required only when a token is set: it
// alone would add ~25 ms to every cold start.

const fs = require('fs');
const http = require('http');
const path = require('path');

const MAX_BODY = 512 * 1024 * 1024;

/** A thrown value as the error text of a reply: "Name: message". */
function describe(err) {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  if (typeof err === 'string') return `Error: ${err}`;
  let text;
  try {
    text = JSON.stringify(err);
  } catch (_) {
    text = undefined;
  }
  return `Error: ${text === undefined ? String(err) : text}`;
}

/** An already-encoded JSON value, spliced into the reply as is. */
class Raw {
  constructor(text) {
    this.text = text;
  }
}

function encode(payload) {
  if (payload.result instanceof Raw) {
    const rest = JSON.stringify({ ...payload, result: undefined });
    return `{"result":${payload.result.text}${rest.length > 2 ? `,${rest.slice(1)}` : '}'}`;
  }
  return JSON.stringify(payload);
}

// -------------------------------------------------------------------------- HTTP

class Server {
  constructor(action, token) {
    this.action = action;
    this.expected = token ? Buffer.from(`Bearer ${token}`) : null;
    this.timingSafeEqual = token ? require('crypto').timingSafeEqual : null;
    this.socketPath = null;
    this.http = http.createServer({ maxHeaderSize: 65536 }, (req, res) => this.serve(req, res));
    // The invoker keeps connections for a minute and freezes idle containers: no server-side
    // idle close, which would race a request on a reused connection.
    this.http.keepAliveTimeout = 0;
    this.http.requestTimeout = 0;
    this.http.headersTimeout = 0;
    this.http.timeout = 0;
    this.http.on('clientError', (err, socket) => {
      if (socket.writable) {
        const body = JSON.stringify({ error: `bad request: ${err.code || err.message}` });
        socket.end(
          `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      } else socket.destroy();
    });
  }

  /** Bind as the environment says; resolves to a printable address. */
  listen(env) {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      const socketPath = env.NIMBUS_SOCKET;
      if (socketPath) {
        fs.mkdirSync(path.dirname(socketPath), { recursive: true });
        try {
          fs.unlinkSync(socketPath); // a stale socket from a previous run
        } catch (err) {
          if (err.code !== 'ENOENT') return reject(err);
        }
        this.http.listen({ path: socketPath, backlog: 1024 }, () => {
          fs.chmodSync(socketPath, 0o666); // the host side may run as another user
          this.socketPath = socketPath;
          resolve(`unix:${socketPath}`);
        });
      } else {
        const host = env.NIMBUS_HOST || '0.0.0.0';
        const port = parseInt(env.NIMBUS_PORT || '8080', 10);
        this.http.listen({ host, port, backlog: 1024 }, () => {
          resolve(`http://${host}:${this.http.address().port}`);
        });
      }
    });
  }

  authorized(req) {
    const given = Buffer.from(req.headers.authorization || '', 'latin1');
    return given.length === this.expected.length && this.timingSafeEqual(given, this.expected);
  }

  serve(req, res) {
    const route = (req.url || '').split('?', 1)[0];
    const declared = parseInt(req.headers['content-length'] || '0', 10);
    if (!(declared >= 0 && declared <= MAX_BODY)) {
      this.send(res, 400, { error: 'bad Content-Length' });
      req.resume();
      return;
    }
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) {
        this.send(res, 400, { error: 'body too large' });
        return;
      }
      this.dispatch(req.method, route, req, Buffer.concat(chunks)).then(
        ([status, payload]) => this.send(res, status, payload),
        (err) => this.send(res, 500, { error: `proxy error: ${describe(err)}` }),
      );
    });
  }

  async dispatch(method, route, req, body) {
    if (route === '/healthz') return method === 'GET' ? [200, { ok: true }] : [405, { error: 'use GET' }];
    if (this.expected && !this.authorized(req)) return [401, { error: 'missing or wrong proxy token' }];
    if (route !== '/init' && route !== '/run') return [404, { error: `no route ${route}` }];
    if (method !== 'POST') return [405, { error: `${route} takes POST` }];
    let data = {};
    if (body.length) {
      try {
        data = JSON.parse(body.toString('utf8'));
      } catch (err) {
        return [400, { error: `request body is not valid JSON: ${err.message}` }];
      }
    }
    return route === '/init' ? this.action.init(data) : this.action.run(data);
  }

  send(res, status, payload) {
    const body = Buffer.from(encode(payload), 'utf8');
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
  }

  /** Remove what this process left on the filesystem (best effort). */
  cleanup() {
    if (this.socketPath) {
      try {
        fs.unlinkSync(this.socketPath);
      } catch (_) {
        // the host may have made the directory read-only: it removes the socket itself
      }
    }
    if (this.action.codeDir) {
      try {
        fs.rmSync(this.action.codeDir, { recursive: true, force: true });
      } catch (_) {
        // best effort: the container's /tmp goes with it
      }
    }
  }
}

module.exports = { Raw, Server, describe };
