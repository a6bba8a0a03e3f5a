'use strict';
/*
 * Nimbus Node.js runtime proxy: runs one function inside one container.
 *
 * No npm dependencies (node's own modules only), and the same protocol as the Python
 * runtime's proxy (runtimes/python/proxy.py), which documents it in full:
 *
 *   POST /init  {"value": {"code", "binary", "main", "env"}}  once; 200 {"ok": true},
 *               400 malformed, 403 a second time, 502 {"error"} code that cannot load.
 *   POST /run   {"value": args, "activation_id", "deadline" (epoch ms), "function_name",
 *                "function_version", "memory_limit_mb", "api_token"}
 *               200 {"result", "logs"}; 502 {"error": "Name: message", "logs",
 *               "traceback"}; 403 before a successful /init.
 *   GET /healthz  200 {"ok": true}
 *
 * The handler ("main" of /init) is "module.function": `module` is a path under the
 * code root resolved as require does (module.js, module/index.js, module/package.json's
 * "main"); dots in it stand for slashes when no such file exists. A bare "function"
 * names an export of the code's entry: the single source file, or in a zip the file its
 * package.json "main" names (index.js by default). Single-file code is written as
 * <module>.js; a top-level function of the handler's name that it declares but does not
 * export is exported for it, as OpenWhisk's Node.js runtime takes such code. The export
 * may be OpenWhisk style, main(params) returning a value or a
 * Promise, or Lambda style, handler(event, context) (async, or with a third `callback`).
 *
 * Each activation's console and process.stdout/stderr output is captured on its own
 * (AsyncLocalStorage follows it across awaits and timers), up to NIMBUS_LOG_LIMIT
 * characters; output after its reply, or outside any activation, goes to the container
 * log. An uncaught exception or unhandled rejection inside an activation fails that
 * activation; outside one it is logged. The proxy enforces no timeout: the invoker gives
 * up at the deadline and removes the container, as with the Python runtime.
 *
 * Transport: a unix socket at $NIMBUS_SOCKET (mode 0666), else TCP on
 * $NIMBUS_HOST:$NIMBUS_PORT (default 0.0.0.0:8080). $NIMBUS_PROXY_TOKEN, when set, is
 * asked for as "Authorization: Bearer <token>" on /init and /run and removed from the
 * environment first. $NIMBUS_API_SOCKET is offered to the function on 127.0.0.1 as
 * $NIMBUS_API_URL, with each call's api_token as $NIMBUS_API_TOKEN. SIGTERM and SIGINT
 * exit at once: the proxy is PID 1 in its container.
 *
 * Beside it: server.js (HTTP, routes, token, replies), capture.js (per-activation
 * output), unzip.js (zip code) and api-forwarder.js (the API on loopback).
 */

const fs = require('fs');
const path = require('path');
const { startApiForwarder } = require('./api-forwarder');
const { Capture, activations, routeWrites } = require('./capture');
const { Raw, Server, describe } = require('./server');
const { ZipError, decodeBase64, extractZip } = require('./unzip');

const NO_DEADLINE_MS = 2 ** 31 - 1;
const API_MAX_CONNECTIONS = parseInt(process.env.NIMBUS_API_MAX_CONNECTIONS || '', 10) || 64;

class BadRequest extends Error {}
class InitError extends Error {}

routeWrites(process.stdout);
const realStderr = routeWrites(process.stderr);

function log(text) {
  realStderr(`nimbus proxy: ${text}\n`);
}

// ----------------------------------------------------------------------- context

/** The Lambda-style second argument. */
class Context {
  constructor(request, apiUrl, apiToken) {
    this.awsRequestId = String(request.activation_id || '');
    this.activationId = this.awsRequestId;
    this.functionName = String(request.function_name || '');
    this.functionVersion = String(request.function_version || '');
    this.memoryLimitInMB = Number(request.memory_limit_mb || 0);
    this.deadline = request.deadline == null ? null : Number(request.deadline);
    this.apiUrl = apiUrl; // this call's own token even when overlapping calls race on env
    this.apiToken = apiToken;
    this.callbackWaitsForEmptyEventLoop = false;
  }

  getRemainingTimeInMillis() {
    if (this.deadline === null) return NO_DEADLINE_MS;
    return Math.max(0, Math.floor(this.deadline - Date.now()));
  }
}

// ------------------------------------------------------------------------ action

function makeCodeDir() {
  const base = process.env.TMPDIR || '/tmp';
  const dir = path.join(base, `nimbus-code-${process.pid}-${process.hrtime.bigint()}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** The file `module` names under root, resolved as require does; null when none. */
function resolveModule(root, module) {
  const candidates = module ? [module] : ['.'];
  if (module.includes('.')) candidates.push(module.split('.').join('/'));
  for (const candidate of candidates) {
    try {
      return require.resolve(path.join(root, candidate));
    } catch (err) {
      if (err.code !== 'MODULE_NOT_FOUND') throw err;
    }
  }
  return null;
}

async function load(file) {
  try {
    return require(file);
  } catch (err) {
    if (err.code !== 'ERR_REQUIRE_ESM') throw err;
    const { pathToFileURL } = require('url');
    return import(pathToFileURL(file).href);
  }
}

/**
 * Appended to single-file code: OpenWhisk's Node.js runtime takes a source whose `main` is
 * a plain top-level function, not exported, so a function of the handler's name that the
 * code declares but does not export is exported for it. After the code, on a line of its
 * own: line numbers in stack traces are unchanged.
 */
function exportFooter(name) {
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name)) return '';
  const key = JSON.stringify(name);
  return (
    `\n;if (typeof module !== 'undefined' && typeof ${name} === 'function' && ` +
    `!Object.prototype.hasOwnProperty.call(module.exports, ${key})) module.exports[${key}] = ${name};\n`
  );
}

/** The one function this proxy serves, and its /init and /run logic. */
class Action {
  constructor() {
    this.attempted = false;
    this.handler = null;
    this.codeDir = null;
    this.apiUrl = null;
  }

  async init(body) {
    // Refused a second time even after a failure: a failed load may leave half a module.
    if (this.attempted) return [403, { error: 'cannot initialize the action more than once' }];
    const value = body && typeof body === 'object' ? body.value : undefined;
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      return [400, { error: '/init body must be {"value": {...}}' }];
    }
    this.attempted = true;
    try {
      await this.load(value);
    } catch (err) {
      if (err instanceof BadRequest || err instanceof ZipError) return [400, { error: err.message }];
      if (err instanceof InitError) return [502, { error: err.message }];
      throw err;
    }
    return [200, { ok: true }];
  }

  async load(value) {
    const main = value.main || 'main';
    const { code } = value;
    const env = value.env || {};
    if (typeof main !== 'string' || typeof code !== 'string') {
      throw new BadRequest("/init needs string fields 'code' and 'main'");
    }
    if (typeof env !== 'object' || Array.isArray(env)) throw new BadRequest("/init 'env' must be an object");
    const dot = main.lastIndexOf('.');
    const module = dot < 0 ? '' : main.slice(0, dot);
    const name = main.slice(dot + 1);
    if (!name || (dot >= 0 && !module)) {
      throw new BadRequest(`handler ${JSON.stringify(main)} must be 'module.function' or 'function'`);
    }
    this.codeDir = makeCodeDir();
    if (value.binary) {
      extractZip(decodeBase64(code), this.codeDir);
    } else {
      if (/[./\\]/.test(module)) {
        throw new BadRequest(
          `handler ${JSON.stringify(main)}: single-file code needs a plain module name (use a zip for packages)`,
        );
      }
      const file = path.join(this.codeDir, `${module || 'index'}.js`);
      fs.writeFileSync(file, code + exportFooter(name), { mode: 0o600 });
    }
    // Started before the load so module-level code can call the API, and set after
    // the function's env so that cannot point NIMBUS_API_URL elsewhere.
    this.apiUrl = await startApiForwarder(process.env.NIMBUS_API_SOCKET, API_MAX_CONNECTIONS, log);
    for (const [key, val] of Object.entries(env)) process.env[key] = val == null ? '' : String(val);
    if (this.apiUrl) process.env.NIMBUS_API_URL = this.apiUrl;

    const where = module ? `module ${JSON.stringify(module)}` : 'the entry module';
    let exported;
    try {
      const file = resolveModule(this.codeDir, module);
      if (file === null) throw new Error(`no file for ${module || 'the package main or index.js'}`);
      exported = await load(file);
    } catch (err) {
      throw new InitError(`cannot import ${where} for handler ${JSON.stringify(main)}: ${describe(err)}`);
    }
    const func = exported == null ? undefined : exported[name];
    if (func === undefined) {
      throw new InitError(`handler ${JSON.stringify(main)} not found: ${where} exports no ${JSON.stringify(name)}`);
    }
    if (typeof func !== 'function') {
      throw new InitError(`handler ${JSON.stringify(main)} is not callable (${typeof func})`);
    }
    this.handler = func;
  }

  async run(body) {
    const { handler } = this;
    if (handler === null) return [403, { error: 'the action is not initialized: POST /init first' }];
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return [400, { error: '/run body must be a JSON object' }];
    }
    const args = body.value === undefined ? {} : body.value;
    const token = typeof body.api_token === 'string' && body.api_token ? body.api_token : null;
    if (this.apiUrl) {
      // Process-wide, so the last writer wins when calls overlap: context.apiToken is exact.
      if (token) process.env.NIMBUS_API_TOKEN = token;
      else delete process.env.NIMBUS_API_TOKEN;
    }
    const capture = new Capture();
    const context = new Context(body, this.apiUrl, token);
    let result;
    try {
      result = await activations.run(capture, () => call(handler, args, context, capture));
    } catch (err) {
      capture.open = false;
      const reply = { error: describe(err), logs: capture.lines() };
      if (err instanceof Error && err.stack) reply.traceback = err.stack;
      return [502, reply];
    }
    capture.open = false;
    let encoded;
    try {
      // Encoded here, not by the reply, so a bad result is reported as such.
      encoded = JSON.stringify(result === undefined ? null : result);
    } catch (err) {
      return [502, { error: `the handler's result is not JSON-serialisable: ${describe(err)}`, logs: capture.lines() }];
    }
    return [200, { result: new Raw(encoded === undefined ? 'null' : encoded), logs: capture.lines() }];
  }
}

/** Call the handler; settles with its value, its Promise's, or its Lambda callback's. */
function call(handler, args, context, capture) {
  return new Promise((resolve, reject) => {
    capture.fail = reject;
    const callback = (err, value) => (err ? reject(err) : resolve(value));
    // A third parameter asks for Lambda's callback; others ignore extra arguments.
    const result = handler.length >= 3 ? handler(args, context, callback) : handler(args, context);
    if (result && typeof result.then === 'function') result.then(resolve, reject);
    else if (handler.length < 3 || result !== undefined) resolve(result);
  });
}

/** An error nobody caught: it fails the activation it belongs to, else it is logged. */
function uncaught(err) {
  const capture = activations.getStore();
  if (capture !== undefined && capture.open && capture.fail !== null) {
    capture.fail(err);
    return;
  }
  log(`uncaught outside any activation: ${err instanceof Error && err.stack ? err.stack : describe(err)}`);
}

async function main() {
  // Taken out of the environment before any function code can inherit it.
  const token = process.env.NIMBUS_PROXY_TOKEN || '';
  delete process.env.NIMBUS_PROXY_TOKEN;
  const server = new Server(new Action(), token);
  const realExit = process.exit.bind(process);
  const stop = () => {
    server.cleanup();
    realExit(0); // work still pending in handlers is not waited for
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('uncaughtException', uncaught);
  process.on('unhandledRejection', uncaught);
  // A function that calls process.exit() fails its call instead of the container.
  process.exit = (code) => {
    throw new Error(`process.exit(${code === undefined ? '' : code}) called by the function`);
  };
  let address;
  try {
    address = await server.listen(process.env);
  } catch (err) {
    realStderr(`nimbus proxy: cannot listen: ${err.message}\n`);
    realExit(1);
  }
  realStderr(`nimbus proxy ${process.pid} listening on ${address}\n`);
}

main();
