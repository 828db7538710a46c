'use strict';
// Starts src/server.js as a real process with the real Baileys library. There is no route to
// WhatsApp here, so a session must stay "connecting" (retrying with backoff) without crashing.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');
const { tempDir, waitFor, startReceiver, SECRET } = require('./helpers');

const SERVER = path.join(__dirname, '..', 'src', 'server.js');

function cleanEnv(extra) {
  const env = { ...process.env, ...extra };
  for (const k of Object.keys(env)) if (k.startsWith('NODE_TEST') || k === 'NODE_OPTIONS') delete env[k];
  return env;
}

test('refuses to start without WABROADCAST_GATEWAY_TOKEN', () => {
  const env = cleanEnv({ WABROADCAST_GATEWAY_DATA: tempDir() });
  delete env.WABROADCAST_GATEWAY_TOKEN;
  const r = spawnSync(process.execPath, [SERVER], { env, encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /WABROADCAST_GATEWAY_TOKEN/);
});

test('starts with the real Baileys makeWASocket and keeps an offline session connecting', async (t) => {
  const receiver = await startReceiver();
  const dataDir = tempDir();
  const child = spawn(process.execPath, [SERVER], {
    env: cleanEnv({ WABROADCAST_GATEWAY_TOKEN: 'smoke-token', WABROADCAST_GATEWAY_PORT: '0', WABROADCAST_GATEWAY_DATA: dataDir }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  t.after(async () => { if (child.exitCode === null) child.kill('SIGKILL'); await receiver.close(); });

  const url = await waitFor(() => (/gateway listening url=(\S+)/.exec(stdout) || [])[1], { timeoutMs: 20000, what: `listening line; stderr: ${stderr}` });
  const call = async (method, p, body) => {
    const res = await fetch(url + p, { method, headers: { 'x-gateway-token': 'smoke-token', 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  assert.equal((await call('GET', '/sessions')).status, 200);
  const started = await call('POST', '/sessions/x/start', { webhook_url: receiver.url, webhook_secret: SECRET });
  assert.equal(started.status, 200);
  assert.equal(started.body.state, 'connecting');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(child.exitCode, null, `server still running; stderr: ${stderr}`);
  const state = await call('GET', '/sessions/x');
  assert.equal(state.status, 200);
  assert.ok(['connecting', 'closed'].includes(state.body.state), JSON.stringify(state.body));
  assert.equal((await call('POST', '/sessions/x/send', { to: '972501234567', text: 'hi', message_id: 'm1' })).status, 409);
  await waitFor(() => receiver.events('connection.update').length >= 1, { what: 'connection.update webhook' });
  assert.ok(receiver.events('connection.update')[0].signatureOk);
  assert.ok(!stdout.includes('972501234567') && !stderr.includes('972501234567'), 'no full phone numbers in logs');

  const out = await call('POST', '/sessions/x/logout');
  assert.equal(out.status, 200);
  assert.equal(out.body.state, 'logged_out');
  assert.ok(!require('node:fs').existsSync(path.join(dataDir, 'x', 'auth')), 'auth state removed');

  child.kill('SIGTERM');
  const { code } = await exited;
  assert.equal(code, 0);
});
