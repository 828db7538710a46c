'use strict';
// Shared test helpers (node --test also loads this file; it defines no tests).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const { SessionManager } = require('../src/sessions');
const { createServer } = require('../src/http');

const TOKEN = 'test-token-123';
const SECRET = 'whsec-test';

/** Stands in for WhatsApp's servers behind a Baileys socket. */
class FakeSocket {
  constructor(opts) {
    this.opts = opts;
    this.ev = new EventEmitter();
    this.sent = [];
    this.user = undefined;
    this.ended = false;
    this.loggedOut = false;
    this.failSends = null;
    // Digits of numbers onWhatsApp leaves out (not on WhatsApp), and the queries it got.
    this.notOnWhatsApp = new Set();
    this.checks = [];
  }

  emit(event, data) { this.ev.emit(event, data); }

  close(code, message = 'closed') {
    const error = Object.assign(new Error(message), { output: { statusCode: code } });
    this.emit('connection.update', { connection: 'close', lastDisconnect: { error, date: new Date() } });
  }

  open(user = { id: '972501234567:3@s.whatsapp.net', name: 'Shop' }) {
    this.user = user;
    this.emit('connection.update', { connection: 'open' });
  }

  async sendMessage(jid, content, options) {
    this.sent.push({ jid, content, options });
    if (this.failSends) throw new Error(this.failSends);
    return { key: { remoteJid: jid, fromMe: true, id: options.messageId }, status: 1 };
  }

  async onWhatsApp(...numbers) {
    this.checks.push(numbers);
    return numbers.filter((n) => !this.notOnWhatsApp.has(n)).map((n) => ({ jid: `${n}@s.whatsapp.net`, exists: true }));
  }

  async logout() {
    this.loggedOut = true;
    this.close(401, 'Intentional Logout');
  }

  end() {
    if (this.ended) return;
    this.ended = true;
    this.close(428, 'Connection Closed');
  }
}

/** A stand-in for useMultiFileAuthState: saveCreds writes creds.json into the folder. */
async function fakeAuthState(dir) {
  fs.mkdirSync(dir, { recursive: true });
  return { state: { creds: {}, keys: {} }, saveCreds: async () => fs.writeFileSync(path.join(dir, 'creds.json'), '{}') };
}

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'wab-gw-'));
}

const quietLog = { info() {}, error() {} };

/** The real SessionManager and HTTP server over fake sockets, on a random port. */
async function startGateway({ dataDir = tempDir(), restore = false, ...options } = {}) {
  const sockets = [];
  const manager = new SessionManager({
    dataDir,
    makeSocket: (opts) => { const s = new FakeSocket(opts); sockets.push(s); return s; },
    useAuthState: fakeAuthState,
    webhookRetryDelaysMs: [10, 30],
    log: quietLog,
    ...options,
  });
  if (restore) await manager.restoreAll();
  const server = createServer({ manager, token: TOKEN, log: quietLog });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  const call = async (method, url, body, token = TOKEN) => {
    const headers = { 'content-type': 'application/json' };
    if (token !== null) headers['x-gateway-token'] = token;
    const res = await fetch(base + url, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  const stop = async () => {
    await manager.close();
    await new Promise((resolve) => server.close(resolve));
  };
  return { manager, server, call, sockets, dataDir, stop, last: () => sockets[sockets.length - 1] };
}

/** A local webhook receiver that records every call and checks its signature. */
async function startReceiver({ failFirst = 0 } = {}) {
  const calls = [];
  let failures = failFirst;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (failures > 0) {
        failures -= 1;
        res.writeHead(503).end();
        return;
      }
      const expected = 'sha256=' + crypto.createHmac('sha256', SECRET).update(raw).digest('hex');
      calls.push({ headers: req.headers, raw, body: JSON.parse(raw), signatureOk: req.headers['x-wabroadcast-signature'] === expected });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hook`,
    calls,
    events: (name) => calls.filter((c) => c.body.event === name),
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}

async function waitFor(check, { timeoutMs = 3000, what = 'condition' } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

module.exports = { FakeSocket, TOKEN, SECRET, startGateway, startReceiver, waitFor, tempDir, fakeAuthState, quietLog };
