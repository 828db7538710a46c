'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { EventEmitter } = require('node:events');
const { WebhookSender } = require('./webhooks');
const { qrPngDataUrl } = require('./qr');
const { log: defaultLog, maskPhone, scrub } = require('./log');

const SESSION_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const MESSAGE_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
const PHONE_RE = /^\+?([1-9][0-9]{6,14})$/;
const MAX_TEXT = 65536;
const MAX_CHECK = 500;
const LOGGED_OUT = 401; // DisconnectReason.loggedOut
const RESTART_REQUIRED = 515; // DisconnectReason.restartRequired
// proto.WebMessageInfo.Status (1 = PENDING is not reported)
const STATUS = { 0: 'error', 2: 'server_ack', 3: 'delivered', 4: 'read', 5: 'played',
  ERROR: 'error', SERVER_ACK: 'server_ack', DELIVERY_ACK: 'delivered', READ: 'read', PLAYED: 'played' };

function isValidSessionId(id) {
  return typeof id === 'string' && SESSION_ID_RE.test(id) && id !== '.' && id !== '..';
}

class GatewayError extends Error {
  constructor(status, body) {
    super(body.message || body.error);
    this.status = status;
    this.body = body;
  }
}

function invalid(message) {
  return new GatewayError(400, { error: 'invalid_request', message });
}

function toInt(value) {
  if (value && typeof value === 'object' && typeof value.toNumber === 'function') return value.toNumber();
  const n = Number(value);
  return Number.isFinite(n) ? Math.trunc(n) : null;
}

function userJidDigits(jid) {
  const m = /^([0-9]+)(?::[0-9]+)?@(s\.whatsapp\.net|c\.us)$/.exec(jid || '');
  return m ? m[1] : null;
}

function messageText(message) {
  let m = message || {};
  for (const wrap of ['ephemeralMessage', 'viewOnceMessage', 'viewOnceMessageV2', 'documentWithCaptionMessage']) {
    if (m[wrap] && m[wrap].message) m = m[wrap].message;
  }
  if (typeof m.conversation === 'string') return m.conversation;
  if (m.extendedTextMessage && typeof m.extendedTextMessage.text === 'string') return m.extendedTextMessage.text;
  return null;
}

/**
 * Owns every WhatsApp session: its socket, state, reconnects, idempotent sends and webhooks.
 * makeSocket({auth, sessionId}) must return a Baileys-like socket (ev.on, sendMessage, logout,
 * end, user); useAuthState(dir) must resolve to {state, saveCreds} (useMultiFileAuthState).
 * Emits 'qr' (sessionId, text) so the server can draw it in a terminal.
 */
class SessionManager extends EventEmitter {
  constructor({
    dataDir, makeSocket, useAuthState, fetch = globalThis.fetch, now = () => new Date(),
    timers = { setTimeout, clearTimeout }, backoff = { baseMs: 1000, maxMs: 60000 },
    webhookRetryDelaysMs, webhookTimeoutMs, renderQr = qrPngDataUrl, log = defaultLog,
  }) {
    super();
    Object.assign(this, { dataDir, makeSocket, useAuthState, now, timers, backoff, renderQr, log });
    this.webhooks = new WebhookSender({ fetch, retryDelaysMs: webhookRetryDelaysMs, timeoutMs: webhookTimeoutMs, log });
    this.sessions = new Map();
    this.closed = false;
  }

  // ---- public API (used by the HTTP layer) ----

  /** Starts every session that has auth state on disk; sessions without one are listed as known. */
  async restoreAll() {
    fs.mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    const restored = [];
    for (const entry of fs.readdirSync(this.dataDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !isValidSessionId(entry.name) || this.sessions.has(entry.name)) continue;
      const s = this._session(entry.name);
      if (fs.existsSync(path.join(s.authDir, 'creds.json'))) {
        if (!s.config) this.log.error('restored session has no webhook config', { session: s.id });
        s.running = true;
        await this._connect(s);
        restored.push(s.id);
      } else if (s.config) {
        s.state = s.config.logged_out ? 'logged_out' : 'closed';
      } else {
        this.sessions.delete(s.id);
      }
    }
    this.log.info('sessions restored', { count: restored.length, ids: restored.join(',') || undefined });
    return restored;
  }

  async start(id, body) {
    const url = body && body.webhook_url;
    const secret = body && body.webhook_secret;
    if (typeof url !== 'string' || !/^https?:\/\/[^\s]+$/i.test(url)) throw invalid('webhook_url must be an http(s) URL');
    if (typeof secret !== 'string' || !secret) throw invalid('webhook_secret must be a non-empty string');
    const s = this.sessions.get(id) || this._session(id);
    s.config = { webhook_url: url, webhook_secret: secret };
    fs.mkdirSync(s.dir, { recursive: true, mode: 0o700 });
    this._saveConfig(s);
    if (!s.running) {
      s.running = true;
      this.log.info('session start', { session: id });
      await this._connect(s);
    }
    return this.view(s);
  }

  get(id) {
    const s = this.sessions.get(id);
    return s ? this.view(s) : null;
  }

  list() {
    return [...this.sessions.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((s) => this.view(s));
  }

  async send(id, body) {
    const s = this._known(id);
    const to = body && body.to;
    const text = body && body.text;
    const messageId = body && body.message_id;
    const phone = typeof to === 'string' ? PHONE_RE.exec(to) : null;
    if (!phone) throw invalid('to must be an E.164 number: digits, with or without +');
    if (typeof text !== 'string' || !text || text.length > MAX_TEXT) throw invalid(`text must be a non-empty string of at most ${MAX_TEXT} characters`);
    if (typeof messageId !== 'string' || !MESSAGE_ID_RE.test(messageId)) throw invalid('message_id must match ^[A-Za-z0-9_.:-]{1,128}$');

    const first = s.sent.get(messageId);
    if (first) return { ...first, repeated: true };
    const pending = s.inflight.get(messageId);
    if (pending) return { ...(await pending), repeated: true };
    if (s.state !== 'connected' || !s.sock) throw new GatewayError(409, { error: 'not_connected', state: s.state });

    const sock = s.sock;
    const run = (async () => {
      let msg;
      try {
        msg = await sock.sendMessage(`${phone[1]}@s.whatsapp.net`, { text }, { messageId });
      } catch (err) {
        this.log.error('send failed', { session: id, message_id: messageId, to: maskPhone(phone[1]), error: scrub(err && err.message) });
        throw new GatewayError(502, { error: 'send_failed', message: scrub((err && err.message) || String(err)) });
      }
      const result = { message_id: (msg && msg.key && msg.key.id) || messageId, status: 'sent' };
      s.sent.set(messageId, result);
      try {
        fs.appendFileSync(s.sentFile, JSON.stringify({ ...result, request_id: messageId, at: this._iso() }) + '\n', { mode: 0o600 });
      } catch (err) {
        this.log.error('could not record sent message', { session: id, message_id: messageId, error: err.message });
      }
      this.log.info('message sent', { session: id, message_id: messageId, to: maskPhone(phone[1]) });
      return result;
    })();
    s.inflight.set(messageId, run);
    try {
      return { ...(await run), repeated: false };
    } finally {
      s.inflight.delete(messageId);
    }
  }

  /**
   * Which numbers are on WhatsApp (Baileys' onWhatsApp, one query for all of them):
   * {results: [{number, exists}]}. onWhatsApp lists only the numbers that exist; when
   * it names a number not asked about (WhatsApp may rewrite one), the numbers left
   * unmatched are not reported, since they may be that one.
   */
  async check(id, body) {
    const s = this._known(id);
    const numbers = body && body.numbers;
    if (!Array.isArray(numbers) || !numbers.length || numbers.length > MAX_CHECK) throw invalid(`numbers must be a list of 1 to ${MAX_CHECK} E.164 numbers`);
    const digits = numbers.map((n) => (typeof n === 'string' ? PHONE_RE.exec(n) : null));
    if (digits.some((d) => !d)) throw invalid('numbers must be E.164 numbers: digits, with or without +');
    if (s.state !== 'connected' || !s.sock) throw new GatewayError(409, { error: 'not_connected', state: s.state });
    let found;
    try {
      found = await s.sock.onWhatsApp(...digits.map((d) => d[1]));
    } catch (err) {
      this.log.error('number check failed', { session: id, count: numbers.length, error: scrub(err && err.message) });
      throw new GatewayError(502, { error: 'check_failed', message: scrub((err && err.message) || String(err)) });
    }
    if (!Array.isArray(found)) throw new GatewayError(502, { error: 'check_failed', message: 'WhatsApp gave no answer' });
    const asked = new Set(digits.map((d) => d[1]));
    const existing = new Set();
    let strangers = false;
    for (const r of found) {
      const number = r && r.exists ? userJidDigits(r.jid) : null;
      if (number && asked.has(number)) existing.add(number);
      else if (r && r.exists) strangers = true;
    }
    const results = [...asked].filter((n) => existing.has(n) || !strangers).map((n) => ({ number: n, exists: existing.has(n) }));
    this.log.info('numbers checked', { session: id, count: asked.size, on_whatsapp: existing.size });
    return { results };
  }

  async logout(id) {
    const s = this._known(id);
    const sock = this._stop(s);
    if (sock) {
      try {
        await Promise.race([sock.logout(), new Promise((_, reject) => setTimeout(() => reject(new Error('logout timed out')), 5000).unref())]);
      } catch (err) {
        this.log.error('logout request failed, removing auth state anyway', { session: id, error: scrub(err && err.message) });
      }
      try { sock.end(undefined); } catch { /* already closed */ }
    }
    this._loggedOut(s);
    this.log.info('session logged out', { session: id });
    return this.view(s);
  }

  /** Ends every socket (keeping auth state) and stops webhooks and timers. */
  async close() {
    this.closed = true;
    for (const s of this.sessions.values()) {
      const sock = this._stop(s);
      if (sock) try { sock.end(undefined); } catch { /* already closed */ }
      s.state = 'closed';
    }
    this.webhooks.close();
  }

  view(s) {
    const v = { id: s.id, state: s.state };
    if (s.state === 'qr' && s.qr) v.qr = { ...s.qr };
    if (s.me) v.me = { ...s.me };
    if (s.lastDisconnect) v.last_disconnect = { ...s.lastDisconnect };
    return v;
  }

  // ---- internals ----

  _known(id) {
    const s = this.sessions.get(id);
    if (!s) throw new GatewayError(404, { error: 'unknown session' });
    return s;
  }

  _session(id) {
    const dir = path.join(this.dataDir, id);
    const s = {
      id, dir, authDir: path.join(dir, 'auth'), configFile: path.join(dir, 'gateway.json'),
      sentFile: path.join(dir, 'sent.jsonl'), config: null, state: 'closed', qr: null, me: null,
      lastDisconnect: null, sock: null, running: false, gen: 0, attempt: 0, timer: null,
      updateSeq: 0, sent: new Map(), inflight: new Map(),
    };
    try {
      s.config = JSON.parse(fs.readFileSync(s.configFile, 'utf8'));
    } catch (err) {
      if (err.code !== 'ENOENT') this.log.error('unreadable gateway.json', { session: id, error: err.message });
    }
    let lines = [];
    try { lines = fs.readFileSync(s.sentFile, 'utf8').split('\n'); } catch { /* nothing sent yet */ }
    for (const line of lines) {
      try {
        const r = JSON.parse(line);
        if (r && r.request_id && !s.sent.has(r.request_id)) s.sent.set(r.request_id, { message_id: r.message_id, status: r.status });
      } catch { /* blank or torn last line */ }
    }
    this.sessions.set(id, s);
    return s;
  }

  _saveConfig(s) {
    fs.writeFileSync(s.configFile, JSON.stringify(s.config, null, 2) + '\n', { mode: 0o600 });
  }

  /** Detaches the session from its socket and timers; returns the socket it had. */
  _stop(s) {
    s.running = false;
    s.gen += 1;
    if (s.timer) this.timers.clearTimeout(s.timer);
    s.timer = null;
    const sock = s.sock;
    s.sock = null;
    return sock;
  }

  _loggedOut(s) {
    fs.rmSync(s.authDir, { recursive: true, force: true });
    s.qr = null;
    s.me = null;
    if (s.config) {
      s.config.logged_out = true;
      this._saveConfig(s);
    }
    this._setState(s, 'logged_out');
  }

  _iso() {
    return new Date(this.now()).toISOString();
  }

  _emit(s, event, data) {
    this.webhooks.enqueue(s.id, s.config, { event, session_id: s.id, at: this._iso(), data });
  }

  _setState(s, state) {
    if (s.state === state) return;
    s.state = state;
    this.log.info('session state', { session: s.id, state, code: state === 'connected' ? undefined : s.lastDisconnect?.code });
    const data = { state };
    if (s.lastDisconnect) data.last_disconnect = { ...s.lastDisconnect };
    this._emit(s, 'connection.update', data);
  }

  async _connect(s) {
    if (this.closed || !s.running) return;
    s.timer = null;
    const gen = ++s.gen;
    this._setState(s, 'connecting');
    if (s.config && s.config.logged_out) {
      delete s.config.logged_out;
      this._saveConfig(s);
    }
    let auth;
    let sock;
    try {
      fs.mkdirSync(s.authDir, { recursive: true, mode: 0o700 });
      auth = await this.useAuthState(s.authDir);
      if (gen !== s.gen || !s.running) return;
      sock = this.makeSocket({ auth: auth.state, sessionId: s.id });
    } catch (err) {
      if (gen !== s.gen) return;
      this.log.error('could not create socket', { session: s.id, error: scrub(err && err.message) });
      this._scheduleReconnect(s);
      return;
    }
    s.sock = sock;
    const current = () => gen === s.gen && s.sock === sock;
    sock.ev.on('creds.update', () => {
      if (gen !== s.gen || !s.running) return;
      Promise.resolve(auth.saveCreds()).catch((err) => this.log.error('could not save creds', { session: s.id, error: err.message }));
    });
    sock.ev.on('connection.update', (u) => { if (current()) this._onConnection(s, sock, u || {}); });
    sock.ev.on('messages.update', (updates) => { if (current()) this._onMessagesUpdate(s, updates); });
    sock.ev.on('messages.upsert', (upsert) => { if (current()) this._onMessagesUpsert(s, upsert); });
  }

  _onConnection(s, sock, u) {
    if (u.qr || u.connection) s.updateSeq += 1;
    if (u.qr) {
      const seq = s.updateSeq;
      Promise.resolve(this.renderQr(u.qr)).then((png) => {
        if (s.sock !== sock || s.updateSeq !== seq) return; // superseded while rendering
        s.qr = { text: u.qr, png_data_url: png };
        this._setState(s, 'qr');
        this.emit('qr', s.id, u.qr);
      }, (err) => this.log.error('could not render QR', { session: s.id, error: err.message }));
    }
    if (u.connection === 'connecting' && s.state !== 'qr') this._setState(s, 'connecting');
    if (u.connection === 'open') {
      s.attempt = 0;
      s.qr = null;
      const user = sock.user || {};
      const name = user.name || user.notify || user.verifiedName;
      s.me = user.id ? { id: user.id, ...(name ? { name } : {}) } : null;
      this._setState(s, 'connected');
    }
    if (u.connection === 'close') this._onClose(s, u.lastDisconnect);
  }

  _onClose(s, lastDisconnect) {
    const code = toInt(lastDisconnect?.error?.output?.statusCode) ?? 0;
    s.sock = null;
    s.qr = null;
    const at = lastDisconnect?.date ? new Date(lastDisconnect.date) : new Date(this.now());
    s.lastDisconnect = { code, at: (Number.isNaN(at.getTime()) ? new Date(this.now()) : at).toISOString() };
    this.log.info('connection closed', { session: s.id, code, reason: scrub(lastDisconnect?.error?.message) });
    if (code === LOGGED_OUT) {
      this._stop(s);
      this._loggedOut(s);
    } else if (code === RESTART_REQUIRED) {
      this._connect(s).catch((err) => this.log.error('reconnect failed', { session: s.id, error: err.message }));
    } else {
      this._scheduleReconnect(s);
    }
  }

  _scheduleReconnect(s) {
    if (this.closed || !s.running) return;
    const delay = Math.min(this.backoff.baseMs * 2 ** s.attempt, this.backoff.maxMs);
    s.attempt += 1;
    this._setState(s, 'connecting');
    this.log.info('reconnect scheduled', { session: s.id, in_ms: delay });
    const gen = s.gen;
    s.timer = this.timers.setTimeout(() => {
      if (gen !== s.gen) return;
      s.timer = null;
      this._connect(s).catch((err) => this.log.error('reconnect failed', { session: s.id, error: err.message }));
    }, delay);
  }

  _onMessagesUpdate(s, updates) {
    for (const { key, update } of Array.isArray(updates) ? updates : []) {
      if (!key || !key.fromMe || !update || update.status === undefined || update.status === null) continue;
      const status = STATUS[update.status];
      if (!status) continue;
      const data = { message_id: key.id, status };
      if (status === 'error') {
        const code = update.messageStubParameters && update.messageStubParameters[0];
        if (code !== undefined && code !== null) data.error_code = String(code);
        if (data.error_code === '463') data.account_restricted = true;
        this.log.info('message error ack', { session: s.id, message_id: key.id, error_code: data.error_code });
      }
      this._emit(s, 'message.status', data);
    }
  }

  _onMessagesUpsert(s, upsert) {
    if (!upsert || upsert.type !== 'notify') return;
    for (const m of upsert.messages || []) {
      if (!m || !m.key || m.key.fromMe || !m.message || m.message.protocolMessage) continue;
      const from = userJidDigits(m.key.remoteJid);
      if (!from) continue; // groups, broadcasts, newsletters
      const timestamp = toInt(m.messageTimestamp) ?? Math.floor(new Date(this.now()).getTime() / 1000);
      this._emit(s, 'message.inbound', { message_id: m.key.id, from, text: messageText(m.message), timestamp });
    }
  }
}

module.exports = { SessionManager, GatewayError, isValidSessionId };
