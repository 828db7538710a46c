'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startGateway, startReceiver, waitFor, SECRET, tempDir } = require('./helpers');

async function setup(t, options = {}) {
  const receiver = await startReceiver(options.receiver);
  const gw = await startGateway(options.gateway);
  t.after(async () => { await gw.stop(); await receiver.close(); });
  return { gw, receiver, startBody: { webhook_url: receiver.url, webhook_secret: SECRET } };
}

async function connected(t, options) {
  const ctx = await setup(t, options);
  const r = await ctx.gw.call('POST', '/sessions/shop/start', ctx.startBody);
  assert.equal(r.status, 200);
  ctx.gw.last().open();
  await waitFor(() => ctx.gw.manager.get('shop').state === 'connected', { what: 'connected' });
  return ctx;
}

function fakeTimers() {
  const pending = [];
  return {
    pending,
    setTimeout: (fn, ms) => { const h = { fn, ms, cleared: false }; pending.push(h); return h; },
    clearTimeout: (h) => { if (h) h.cleared = true; },
    runNext() { const h = pending.shift(); if (!h.cleared) h.fn(); return h; },
  };
}

test('auth, routing and validation', async (t) => {
  const { gw, startBody } = await setup(t);
  assert.deepEqual(await gw.call('GET', '/sessions', undefined, null), { status: 401, body: { error: 'unauthorized' } });
  assert.deepEqual(await gw.call('GET', '/sessions', undefined, 'wrong'), { status: 401, body: { error: 'unauthorized' } });
  assert.deepEqual(await gw.call('POST', '/sessions/x/start', startBody, 'test-token-12'), { status: 401, body: { error: 'unauthorized' } });
  assert.equal((await gw.call('GET', '/nope')).status, 404);
  assert.equal((await gw.call('DELETE', '/sessions/x')).status, 404);
  assert.deepEqual(await gw.call('GET', '/sessions/x'), { status: 404, body: { error: 'unknown session' } });
  assert.equal((await gw.call('POST', '/sessions/x/start', '{not json')).status, 400);
  assert.equal((await gw.call('POST', '/sessions/x/start', '[1]')).status, 400);
  assert.equal((await gw.call('POST', '/sessions/bad%20id/start', startBody)).status, 400);
  assert.equal((await gw.call('POST', '/sessions/..%2F..%2Fetc/start', startBody)).status, 400);
  assert.equal((await gw.call('POST', `/sessions/${'a'.repeat(65)}/start`, startBody)).status, 400);
  assert.equal((await gw.call('POST', '/sessions/x/start', { webhook_url: 'ftp://x', webhook_secret: 's' })).status, 400);
  assert.equal((await gw.call('POST', '/sessions/x/start', { webhook_url: startBody.webhook_url })).status, 400);
  assert.deepEqual(await gw.call('GET', '/sessions'), { status: 200, body: { sessions: [] } });
  assert.equal(gw.sockets.length, 0);
});

test('start -> connecting, qr -> qr with PNG, open -> connected with me; state changes go out as webhooks', async (t) => {
  const { gw, receiver, startBody } = await setup(t);
  const started = await gw.call('POST', '/sessions/shop/start', startBody);
  assert.deepEqual(started, { status: 200, body: { id: 'shop', state: 'connecting' } });
  assert.equal(gw.sockets.length, 1);
  const again = await gw.call('POST', '/sessions/shop/start', startBody);
  assert.equal(again.body.state, 'connecting');
  assert.equal(gw.sockets.length, 1, 'a running session keeps its socket');

  gw.last().emit('connection.update', { qr: '2@abcdef,ghijk,lmnop' });
  const qr = await waitFor(async () => { const r = await gw.call('GET', '/sessions/shop'); return r.body.state === 'qr' && r.body; }, { what: 'qr' });
  assert.equal(qr.qr.text, '2@abcdef,ghijk,lmnop');
  assert.match(qr.qr.png_data_url, /^data:image\/png;base64,[A-Za-z0-9+/=]+$/);
  const png = Buffer.from(qr.qr.png_data_url.split(',')[1], 'base64');
  assert.equal(png.subarray(1, 4).toString(), 'PNG');

  gw.last().open({ id: '972501234567:3@s.whatsapp.net', name: 'Shop' });
  const state = (await gw.call('GET', '/sessions/shop')).body;
  assert.deepEqual(state, { id: 'shop', state: 'connected', me: { id: '972501234567:3@s.whatsapp.net', name: 'Shop' } });
  assert.deepEqual((await gw.call('GET', '/sessions')).body, { sessions: [state] });

  await waitFor(() => receiver.events('connection.update').length >= 3, { what: 'webhooks' });
  const updates = receiver.events('connection.update');
  assert.deepEqual(updates.map((c) => c.body.data.state), ['connecting', 'qr', 'connected']);
  for (const c of updates) {
    assert.ok(c.signatureOk, 'signed with the webhook secret');
    assert.equal(c.headers['x-wabroadcast-session'], 'shop');
    assert.equal(c.body.session_id, 'shop');
    assert.ok(!Number.isNaN(Date.parse(c.body.at)));
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(gw.dataDir, 'shop', 'gateway.json'), 'utf8'));
  assert.deepEqual(cfg, startBody);
});

test('send uses messageId; a repeated message_id is not sent again, also after a restart', async (t) => {
  const { gw, startBody } = await connected(t);
  const body = { to: '+972501234567', text: 'Hello', message_id: 'wab-17-1' };
  const first = await gw.call('POST', '/sessions/shop/send', body);
  assert.deepEqual(first, { status: 200, body: { message_id: 'wab-17-1', status: 'sent', repeated: false } });
  const sock = gw.last();
  assert.deepEqual(sock.sent, [{ jid: '972501234567@s.whatsapp.net', content: { text: 'Hello' }, options: { messageId: 'wab-17-1' } }]);
  const second = await gw.call('POST', '/sessions/shop/send', { ...body, to: '972501234567' });
  assert.deepEqual(second, { status: 200, body: { message_id: 'wab-17-1', status: 'sent', repeated: true } });
  assert.equal(sock.sent.length, 1);

  // concurrent duplicates: one send
  const [a, b] = await Promise.all([
    gw.call('POST', '/sessions/shop/send', { ...body, message_id: 'wab-18-1' }),
    gw.call('POST', '/sessions/shop/send', { ...body, message_id: 'wab-18-1' }),
  ]);
  assert.deepEqual([a.body.repeated, b.body.repeated].sort(), [false, true]);
  assert.equal(sock.sent.length, 2);

  for (const bad of [{ ...body, to: '0501234567' }, { ...body, to: '12' }, { ...body, text: '' }, { ...body, message_id: 'has space' }, { to: body.to, text: 'x' }]) {
    assert.equal((await gw.call('POST', '/sessions/shop/send', bad)).status, 400);
  }
  assert.equal((await gw.call('POST', '/sessions/nobody/send', body)).status, 404);
  assert.equal(sock.sent.length, 2);

  // a new SessionManager over the same data dir remembers what was sent
  const gw2 = await startGateway({ dataDir: gw.dataDir });
  t.after(() => gw2.stop());
  await gw2.call('POST', '/sessions/shop/start', startBody);
  gw2.last().open();
  await waitFor(() => gw2.manager.get('shop').state === 'connected');
  const third = await gw2.call('POST', '/sessions/shop/send', body);
  assert.deepEqual(third.body, { message_id: 'wab-17-1', status: 'sent', repeated: true });
  assert.equal(gw2.last().sent.length, 0);
  const fresh = await gw2.call('POST', '/sessions/shop/send', { ...body, message_id: 'wab-19-1' });
  assert.equal(fresh.body.repeated, false);
  assert.equal(gw2.last().sent.length, 1);
});

test('send while not connected -> 409 and nothing sent; a send that throws -> 502', async (t) => {
  const { gw, startBody } = await setup(t);
  await gw.call('POST', '/sessions/shop/start', startBody);
  const body = { to: '972501234567', text: 'Hi', message_id: 'm1' };
  assert.deepEqual(await gw.call('POST', '/sessions/shop/send', body), { status: 409, body: { error: 'not_connected', state: 'connecting' } });
  assert.equal(gw.last().sent.length, 0);

  gw.last().open();
  gw.last().failSends = 'Connection Closed for 972501234567';
  const failed = await gw.call('POST', '/sessions/shop/send', body);
  assert.equal(failed.status, 502);
  assert.equal(failed.body.error, 'send_failed');
  assert.ok(!failed.body.message.includes('972501234567'), 'phone masked in the message');
  gw.last().failSends = null;
  const retried = await gw.call('POST', '/sessions/shop/send', body);
  assert.deepEqual(retried.body, { message_id: 'm1', status: 'sent', repeated: false }, 'a failed send is not recorded');
});

test('check asks onWhatsApp once for all the numbers; absent ones do not exist', async (t) => {
  const { gw } = await connected(t);
  const sock = gw.last();
  sock.notOnWhatsApp.add('972500000000');
  const r = await gw.call('POST', '/sessions/shop/check', { numbers: ['+972501234567', '972500000000'] });
  assert.deepEqual(r, { status: 200, body: { results: [{ number: '972501234567', exists: true }, { number: '972500000000', exists: false }] } });
  assert.deepEqual(sock.checks, [['972501234567', '972500000000']]);
  assert.equal(sock.sent.length, 0, 'a check sends nothing');

  // WhatsApp names a number not asked about: the unmatched ones are not reported.
  sock.onWhatsApp = async () => [{ jid: '551187654321@s.whatsapp.net', exists: true }, { jid: '972501234567@s.whatsapp.net', exists: true }];
  const rewritten = await gw.call('POST', '/sessions/shop/check', { numbers: ['5511987654321', '972501234567'] });
  assert.deepEqual(rewritten.body, { results: [{ number: '972501234567', exists: true }] });
  sock.onWhatsApp = async () => undefined;
  assert.deepEqual((await gw.call('POST', '/sessions/shop/check', { numbers: ['972501234567'] })).body.error, 'check_failed');
  sock.onWhatsApp = async () => { throw new Error('usync timed out'); };
  assert.equal((await gw.call('POST', '/sessions/shop/check', { numbers: ['972501234567'] })).status, 502);

  for (const bad of [{}, { numbers: [] }, { numbers: ['12'] }, { numbers: [972501234567] }, { numbers: Array(501).fill('972501234567') }]) {
    assert.equal((await gw.call('POST', '/sessions/shop/check', bad)).status, 400);
  }
  assert.equal((await gw.call('POST', '/sessions/shop/check', { numbers: ['972501234567'] }, 'wrong')).status, 401);
  assert.equal((await gw.call('POST', '/sessions/nobody/check', { numbers: ['972501234567'] })).status, 404);
  sock.close(408);
  await waitFor(() => gw.manager.get('shop').state === 'connecting');
  const refused = await gw.call('POST', '/sessions/shop/check', { numbers: ['972501234567'] });
  assert.deepEqual(refused, { status: 409, body: { error: 'not_connected', state: 'connecting' } });
});

test('messages.update of our messages -> signed message.status webhooks', async (t) => {
  const { gw, receiver } = await connected(t);
  const sock = gw.last();
  const key = (id, fromMe = true) => ({ remoteJid: '972501234567@s.whatsapp.net', fromMe, id });
  sock.emit('messages.update', [
    { key: key('A1'), update: { status: 2 } },
    { key: key('A1'), update: { status: 3, messageTimestamp: 1767000005 } },
    { key: key('A1'), update: { status: 4 } },
    { key: key('A2'), update: { status: 5 } },
    { key: key('A3'), update: { status: 1 } }, // PENDING: not reported
    { key: key('B1', false), update: { status: 4 } }, // not ours
    { key: key('A4'), update: { starred: true } }, // no status
  ]);
  sock.emit('messages.update', [{ key: key('A5'), update: { status: 0, messageStubParameters: ['463'] } }]);
  sock.emit('messages.update', [{ key: key('A6'), update: { status: 0, messageStubParameters: ['479', 'x'] } }]);
  await waitFor(() => receiver.events('message.status').length >= 6, { what: 'status webhooks' });
  const got = receiver.events('message.status');
  assert.ok(got.every((c) => c.signatureOk && c.headers['x-wabroadcast-session'] === 'shop'));
  assert.deepEqual(got.map((c) => c.body.data), [
    { message_id: 'A1', status: 'server_ack' },
    { message_id: 'A1', status: 'delivered' },
    { message_id: 'A1', status: 'read' },
    { message_id: 'A2', status: 'played' },
    { message_id: 'A5', status: 'error', error_code: '463', account_restricted: true },
    { message_id: 'A6', status: 'error', error_code: '479' },
  ]);
  await gw.manager.webhooks.idle();
  assert.equal(receiver.events('message.status').length, 6);
});

test('inbound messages.upsert -> message.inbound webhook', async (t) => {
  const { gw, receiver } = await connected(t);
  const msg = (id, jid, message, fromMe = false) => ({ key: { remoteJid: jid, fromMe, id }, message, messageTimestamp: 1767000100 });
  gw.last().emit('messages.upsert', { type: 'append', messages: [msg('H1', '972500000001@s.whatsapp.net', { conversation: 'old' })] });
  gw.last().emit('messages.upsert', {
    type: 'notify',
    messages: [
      msg('I1', '972500000001@s.whatsapp.net', { conversation: 'STOP' }),
      msg('I2', '972500000002@s.whatsapp.net', { extendedTextMessage: { text: 'link https://x' } }),
      msg('I3', '972500000003@s.whatsapp.net', { imageMessage: {} }),
      msg('O1', '972500000001@s.whatsapp.net', { conversation: 'mine' }, true),
      msg('G1', '120363000000@g.us', { conversation: 'group' }),
    ],
  });
  await waitFor(() => receiver.events('message.inbound').length >= 3, { what: 'inbound webhooks' });
  await gw.manager.webhooks.idle();
  const got = receiver.events('message.inbound');
  assert.ok(got.every((c) => c.signatureOk));
  assert.deepEqual(got.map((c) => c.body.data), [
    { message_id: 'I1', from: '972500000001', text: 'STOP', timestamp: 1767000100 },
    { message_id: 'I2', from: '972500000002', text: 'link https://x', timestamp: 1767000100 },
    { message_id: 'I3', from: '972500000003', text: null, timestamp: 1767000100 },
  ]);
});

test('reconnect rules: 515 at once, 408 with exponential backoff, 401 logged out', async (t) => {
  const timers = fakeTimers();
  const { gw, receiver } = await connected(t, { gateway: { timers } });
  const authDir = path.join(gw.dataDir, 'shop', 'auth');

  gw.last().close(515, 'restart required');
  await waitFor(() => gw.sockets.length === 2, { what: '515: new socket at once' });
  assert.equal(timers.pending.length, 0, 'no backoff for 515');
  assert.equal(gw.manager.get('shop').state, 'connecting');

  gw.last().close(408, 'timed out');
  assert.equal(gw.manager.get('shop').state, 'connecting');
  assert.equal(gw.manager.get('shop').last_disconnect.code, 408);
  assert.equal(gw.sockets.length, 2, 'no new socket before the backoff');
  const delays = [];
  for (let i = 0; i < 8; i++) {
    const h = timers.runNext();
    delays.push(h.ms);
    await waitFor(() => gw.sockets.length === 3 + i, { what: 'socket after backoff' });
    gw.last().close(408, 'timed out');
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
  timers.runNext();
  await waitFor(() => gw.sockets.length === 11);
  gw.last().open();
  gw.last().close(428, 'closed');
  assert.equal(timers.pending[0].ms, 1000, 'backoff resets once connected');
  timers.runNext();
  await waitFor(() => gw.sockets.length === 12);
  gw.last().open();
  await waitFor(() => gw.manager.get('shop').state === 'connected');

  assert.ok(fs.existsSync(authDir));
  const before = gw.sockets.length;
  gw.last().close(401, 'logged out');
  const state = gw.manager.get('shop');
  assert.equal(state.state, 'logged_out');
  assert.equal(state.last_disconnect.code, 401);
  assert.ok(!fs.existsSync(authDir), 'auth state removed');
  assert.equal(timers.pending.length, 0);
  assert.equal(gw.sockets.length, before, 'no reconnect after 401');
  await waitFor(() => receiver.events('connection.update').some((c) => c.body.data.state === 'logged_out'));
  const lo = receiver.events('connection.update').find((c) => c.body.data.state === 'logged_out');
  assert.equal(lo.body.data.last_disconnect.code, 401);
  assert.ok(lo.signatureOk);
  assert.equal((await gw.call('POST', '/sessions/shop/send', { to: '972501234567', text: 'x', message_id: 'z' })).status, 409);
});

test('logout over HTTP logs the socket out and removes the auth state', async (t) => {
  const { gw, startBody } = await connected(t);
  const sock = gw.last();
  const r = await gw.call('POST', '/sessions/shop/logout');
  assert.equal(r.status, 200);
  assert.equal(r.body.state, 'logged_out');
  assert.ok(sock.loggedOut);
  assert.ok(!fs.existsSync(path.join(gw.dataDir, 'shop', 'auth')));
  assert.equal(gw.sockets.length, 1, 'no reconnect');
  assert.equal((await gw.call('POST', '/sessions/other/logout')).status, 404);
  // start again -> a new socket (new pairing)
  const again = await gw.call('POST', '/sessions/shop/start', startBody);
  assert.equal(again.body.state, 'connecting');
  assert.equal(gw.sockets.length, 2);
});

test('restart: restoreAll starts every session with auth state, with its saved webhook config', async (t) => {
  const { gw, receiver, startBody } = await connected(t);
  gw.last().emit('creds.update', {});
  await waitFor(() => fs.existsSync(path.join(gw.dataDir, 'shop', 'auth', 'creds.json')), { what: 'creds saved' });
  await gw.call('POST', '/sessions/paired-never/start', startBody); // no creds: not restarted
  await gw.stop();

  const gw2 = await startGateway({ dataDir: gw.dataDir, restore: true });
  t.after(() => gw2.stop());
  assert.equal(gw2.sockets.length, 1, 'only the session with auth state gets a socket');
  assert.equal(gw2.sockets[0].opts.sessionId, 'shop');
  assert.equal(gw2.manager.get('shop').state, 'connecting');
  assert.equal(gw2.manager.get('paired-never').state, 'closed');
  const before = receiver.calls.length;
  gw2.last().open();
  gw2.last().emit('messages.update', [{ key: { remoteJid: 'x@s.whatsapp.net', fromMe: true, id: 'R1' }, update: { status: 3 } }]);
  await waitFor(() => receiver.events('message.status').some((c) => c.body.data.message_id === 'R1'), { what: 'webhook after restart' });
  assert.ok(receiver.calls.slice(before).every((c) => c.signatureOk), 'signed with the saved secret');
});

test('webhooks are retried on 5xx', async (t) => {
  const { gw, receiver } = await connected(t, { receiver: { failFirst: 2 } });
  await gw.manager.webhooks.idle();
  gw.last().emit('messages.update', [{ key: { remoteJid: 'x@s.whatsapp.net', fromMe: true, id: 'W1' }, update: { status: 3 } }]);
  await waitFor(() => receiver.events('message.status').length === 1, { what: 'retried webhook' });
  // the first event (connecting) needed three attempts; nothing was lost
  assert.deepEqual(receiver.events('connection.update').map((c) => c.body.data.state), ['connecting', 'connected']);
});

test('a fresh data dir is created by restoreAll', async () => {
  const dir = path.join(tempDir(), 'nested', 'data');
  const gw = await startGateway({ dataDir: dir, restore: true });
  assert.ok(fs.existsSync(dir));
  await gw.stop();
});
