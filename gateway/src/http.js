'use strict';
const http = require('node:http');
const { safeEqual } = require('./signing');
const { GatewayError, isValidSessionId } = require('./sessions');
const { log: defaultLog, scrub } = require('./log');

const MAX_BODY = 1024 * 1024;

function reply(res, status, body) {
  const raw = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(raw) });
  res.end(raw);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new GatewayError(413, { error: 'body_too_large' }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (!raw.trim()) return resolve({});
      let body;
      try { body = JSON.parse(raw); } catch { return reject(new GatewayError(400, { error: 'bad_json' })); }
      if (!body || typeof body !== 'object' || Array.isArray(body)) return reject(new GatewayError(400, { error: 'bad_json', message: 'body must be a JSON object' }));
      resolve(body);
    });
  });
}

/** Matches a request to [handler, sessionId]; null when no route fits. */
function route(method, pathname) {
  if (pathname === '/sessions') return method === 'GET' ? ['list', null] : null;
  const m = /^\/sessions\/([^/]+)(?:\/(start|send|check|logout))?$/.exec(pathname);
  if (!m) return null;
  if (!m[2]) return method === 'GET' ? ['get', m[1]] : null;
  return method === 'POST' ? [m[2], m[1]] : null;
}

/** The gateway's HTTP API over a SessionManager; every call needs X-Gateway-Token. */
function createServer({ manager, token, log = defaultLog }) {
  if (!token) throw new Error('token is required');
  return http.createServer(async (req, res) => {
    try {
      const given = req.headers['x-gateway-token'];
      if (typeof given !== 'string' || !safeEqual(given, token)) return reply(res, 401, { error: 'unauthorized' });
      const { pathname } = new URL(req.url, 'http://gateway.invalid');
      const found = route(req.method, pathname);
      if (!found) return reply(res, 404, { error: 'not_found' });
      const [action, id] = found;
      if (id !== null && !isValidSessionId(id)) return reply(res, 400, { error: 'invalid_session_id' });
      const body = req.method === 'POST' ? await readJson(req) : null;
      switch (action) {
        case 'list': return reply(res, 200, { sessions: manager.list() });
        case 'get': {
          const state = manager.get(id);
          return state ? reply(res, 200, state) : reply(res, 404, { error: 'unknown session' });
        }
        case 'start': return reply(res, 200, await manager.start(id, body));
        case 'send': return reply(res, 200, await manager.send(id, body));
        case 'check': return reply(res, 200, await manager.check(id, body));
        case 'logout': return reply(res, 200, await manager.logout(id));
        default: return reply(res, 404, { error: 'not_found' });
      }
    } catch (err) {
      if (err instanceof GatewayError) return reply(res, err.status, err.body);
      log.error('request failed', { method: req.method, url: req.url, error: scrub(err && err.stack) });
      if (!res.headersSent) reply(res, 500, { error: 'internal' });
    }
  });
}

module.exports = { createServer };
