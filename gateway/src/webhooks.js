'use strict';
const { sign } = require('./signing');
const { log: defaultLog, scrub } = require('./log');

const MAX_QUEUED = 10000;

/**
 * Signed webhook delivery. Fire-and-forget for the caller; one queue per session so that a
 * session's events arrive in the order they happened. Each event is tried up to
 * retryDelaysMs.length + 1 times, retrying on a network error, a timeout, 429 or 5xx.
 */
class WebhookSender {
  constructor({ fetch = globalThis.fetch, retryDelaysMs = [1000, 3000], timeoutMs = 10000, log = defaultLog } = {}) {
    this.fetch = fetch;
    this.retryDelaysMs = retryDelaysMs;
    this.timeoutMs = timeoutMs;
    this.log = log;
    this.queues = new Map();
    this.closed = false;
  }

  /** config = {webhook_url, webhook_secret}; payload = {event, session_id, at, data}. */
  enqueue(sessionId, config, payload) {
    if (this.closed) return;
    if (!config || !config.webhook_url) {
      this.log.error('webhook skipped: no webhook configured', { session: sessionId, event: payload.event });
      return;
    }
    let q = this.queues.get(sessionId);
    if (!q) this.queues.set(sessionId, (q = { items: [], running: null }));
    if (q.items.length >= MAX_QUEUED) {
      const dropped = q.items.shift();
      this.log.error('webhook queue full, dropped oldest event', { session: sessionId, event: dropped.payload.event });
    }
    q.items.push({ config, payload });
    if (!q.running) q.running = this._drain(sessionId, q);
  }

  /** Resolves once every queued event has been delivered or given up (tests use it). */
  async idle() {
    for (const q of this.queues.values()) if (q.running) await q.running;
  }

  close() {
    this.closed = true;
  }

  async _drain(sessionId, q) {
    try {
      while (q.items.length && !this.closed) await this._deliver(sessionId, q.items.shift());
    } catch (err) {
      this.log.error('webhook delivery crashed', { session: sessionId, error: scrub(err && err.message) });
    } finally {
      q.running = null;
    }
  }

  async _deliver(sessionId, { config, payload }) {
    const body = JSON.stringify(payload);
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'wabroadcast-gateway',
      'x-wabroadcast-signature': sign(config.webhook_secret || '', body),
      'x-wabroadcast-session': sessionId,
      'x-wabroadcast-event': payload.event,
    };
    const attempts = this.retryDelaysMs.length + 1;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let reason;
      try {
        const res = await this.fetch(config.webhook_url, {
          method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs),
        });
        await res.arrayBuffer().catch(() => {});
        if (res.status >= 200 && res.status < 300) return true;
        reason = `HTTP ${res.status}`;
        if (res.status < 500 && res.status !== 429) {
          this.log.error('webhook rejected, not retried', { session: sessionId, event: payload.event, reason });
          return false;
        }
      } catch (err) {
        const cause = err && err.cause ? `: ${err.cause.code || err.cause.message}` : '';
        reason = scrub(`${(err && err.message) || err}${cause}`);
      }
      if (attempt === attempts || this.closed) {
        this.log.error('webhook failed, giving up', { session: sessionId, event: payload.event, attempts: attempt, reason });
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, this.retryDelaysMs[attempt - 1]));
    }
    return false;
  }
}

module.exports = { WebhookSender };
