'use strict';
// Test support, not shipped: the real gateway (src/http.js's server over src/sessions.js's
// SessionManager) with the fake socket of helpers.js in place of Baileys, so a test can play
// WhatsApp's part. Same environment as src/server.js (WABROADCAST_GATEWAY_TOKEN, _PORT, _HOST,
// _DATA), same "gateway listening" line, plus one control route on the same server, behind the
// same token:
//
//   POST /_test/sessions/{id}/emit  {"event": "connection.update", "data": {"qr": "2@..."}}
//   POST /_test/sessions/{id}/emit  {"event": "connection.update", "data": {"connection": "open"},
//                                    "user": {"id": "972501234567:3@s.whatsapp.net", "name": "Shop"}}
//
// emits `event` with `data` on the session's current fake socket (`user` first becomes the
// socket's `user`, as Baileys sets it before "open"). 404 when the session has no socket.
//
//   POST /_test/sessions/{id}/numbers  {"not_on_whatsapp": ["972500000000"]}
//
// sets (when given) the numbers the socket's onWhatsApp leaves out, and answers
// {"checks": [[numbers of one onWhatsApp query], ...]}, every query the socket got.
//
//   node test/fake-socket-server.js
const path = require('node:path');
const { SessionManager, isValidSessionId } = require('../src/sessions');
const { createServer } = require('../src/http');
const { safeEqual } = require('../src/signing');
const { log } = require('../src/log');
const { FakeSocket, fakeAuthState } = require('./helpers');

const CONTROL_ROUTE = /^\/_test\/sessions\/([^/]+)\/(emit|numbers)$/;

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('error', reject);
    req.on('end', () => {
      try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}')); } catch (err) { reject(err); }
    });
  });
}

/** The control routes: make a session's fake socket emit one event, or set its numbers. */
function control({ sockets, token }) {
  return async (req, res) => {
    const given = req.headers['x-gateway-token'];
    if (typeof given !== 'string' || !safeEqual(given, token)) return reply(res, 401, { error: 'unauthorized' });
    const found = CONTROL_ROUTE.exec(new URL(req.url, 'http://gateway.invalid').pathname);
    if (!found || req.method !== 'POST') return reply(res, 404, { error: 'not_found' });
    const id = found[1];
    if (!isValidSessionId(id)) return reply(res, 400, { error: 'invalid_session_id' });
    let body;
    try { body = await readBody(req); } catch { return reply(res, 400, { error: 'bad_json' }); }
    const socket = sockets.get(id);
    if (found[2] === 'numbers') {
      if (!socket) return reply(res, 404, { error: 'no socket for this session: start it first' });
      if (Array.isArray(body && body.not_on_whatsapp)) socket.notOnWhatsApp = new Set(body.not_on_whatsapp.map(String));
      return reply(res, 200, { checks: socket.checks });
    }
    if (!body || typeof body.event !== 'string') return reply(res, 400, { error: 'invalid_request', message: 'event must be a string' });
    if (!socket) return reply(res, 404, { error: 'no socket for this session: start it first' });
    if (body.user !== undefined) socket.user = body.user;
    socket.emit(body.event, body.data ?? {});
    return reply(res, 200, { emitted: body.event });
  };
}

async function main(env = process.env) {
  const token = env.WABROADCAST_GATEWAY_TOKEN;
  if (!token) throw new Error('WABROADCAST_GATEWAY_TOKEN is required');
  const port = Number(env.WABROADCAST_GATEWAY_PORT ?? 8790);
  const host = env.WABROADCAST_GATEWAY_HOST || '127.0.0.1';
  const dataDir = path.resolve(env.WABROADCAST_GATEWAY_DATA || './gateway-data');

  const sockets = new Map(); // session id -> its newest fake socket
  const manager = new SessionManager({
    dataDir,
    useAuthState: fakeAuthState,
    makeSocket: (opts) => {
      const socket = new FakeSocket(opts);
      sockets.set(opts.sessionId, socket);
      return socket;
    },
  });
  const server = createServer({ manager, token });
  // The real API answers everything but the control route, unchanged.
  const api = server.listeners('request')[0];
  const controlRoute = control({ sockets, token });
  server.removeAllListeners('request');
  server.on('request', (req, res) => (req.url.startsWith('/_test/') ? controlRoute(req, res) : api(req, res)));

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  log.info('gateway listening', { url: `http://${address.address}:${address.port}`, data: dataDir, fake: 'socket' });
  await manager.restoreAll();

  const shutdown = () => {
    server.close();
    manager.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  return { server, manager, sockets };
}

// `node --test` runs every file under test/ (this one too): serve only when started by hand.
if (require.main === module && !process.env.NODE_TEST_CONTEXT) {
  main().catch((err) => {
    process.stderr.write(`fake-socket gateway: ${err && err.message}\n`);
    process.exit(1);
  });
}

module.exports = { main };
