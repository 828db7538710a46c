'use strict';
// Entry point: reads the environment, wires the real Baileys library into the SessionManager,
// restores the sessions found on disk and serves the HTTP API.
const path = require('node:path');
const { log, scrub } = require('./log');

function fail(message) {
  process.stderr.write(`wabroadcast-gateway: ${message}\n`);
  process.exit(2);
}

/** A pino-compatible logger for Baileys: warnings and errors as one scrubbed line, the rest dropped. */
function baileysLogger(bindings = {}) {
  const out = (level) => (obj, msg) => {
    let text = typeof obj === 'string' ? obj : msg || '';
    const err = obj && typeof obj === 'object' && (obj.err || obj.error);
    if (err && err.message) text += `: ${err.message}`;
    log.error(`baileys ${level}`, { session: bindings.session, msg: scrub(text) });
  };
  const noop = () => {};
  return {
    level: 'warn',
    child: (more) => baileysLogger({ ...bindings, ...more }),
    trace: noop, debug: noop, info: noop, warn: out('warn'), error: out('error'), fatal: out('fatal'),
  };
}

async function main(env = process.env) {
  const token = env.WABROADCAST_GATEWAY_TOKEN;
  if (!token) fail('WABROADCAST_GATEWAY_TOKEN is required');
  const port = Number(env.WABROADCAST_GATEWAY_PORT ?? 8790);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('WABROADCAST_GATEWAY_PORT must be a port number');
  const host = env.WABROADCAST_GATEWAY_HOST || '127.0.0.1';
  const dataDir = path.resolve(env.WABROADCAST_GATEWAY_DATA || './gateway-data');

  // Loaded only after the checks above, so a misconfigured start fails fast.
  const baileys = require('baileys');
  const { SessionManager } = require('./sessions');
  const { createServer } = require('./http');
  const { qrTerminal } = require('./qr');

  const manager = new SessionManager({
    dataDir,
    useAuthState: baileys.useMultiFileAuthState,
    // No fetchLatestBaileysVersion(): nothing at start-up may need the internet.
    makeSocket: ({ auth, sessionId }) => baileys.default({
      auth,
      logger: baileysLogger({ session: sessionId }),
      printQRInTerminal: false,
      markOnlineOnConnect: false,
    }),
  });
  if (env.WABROADCAST_GATEWAY_QR_TERMINAL === '1') {
    manager.on('qr', (id, text) => {
      qrTerminal(text).then((art) => process.stdout.write(`QR for session ${id}:\n${art}\n`), () => {});
    });
  }

  const server = createServer({ manager, token });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  log.info('gateway listening', { url: `http://${address.address}:${address.port}`, data: dataDir });
  await manager.restoreAll();

  const shutdown = (signal) => {
    log.info('gateway stopping', { signal });
    server.close();
    manager.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  return { server, manager };
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`wabroadcast-gateway: ${err && err.message}\n`);
    process.exit(1);
  });
}

module.exports = { main, baileysLogger };
