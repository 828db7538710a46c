'use strict';
const crypto = require('node:crypto');

/** `sha256=<hex HMAC-SHA256 of the raw body>` keyed with the session's webhook secret. */
function sign(secret, rawBody) {
  return 'sha256=' + crypto.createHmac('sha256', secret).update(rawBody).digest('hex');
}

/** Constant-time comparison of two strings (hashing first hides their lengths). */
function safeEqual(a, b) {
  const ha = crypto.createHash('sha256').update(String(a)).digest();
  const hb = crypto.createHash('sha256').update(String(b)).digest();
  return crypto.timingSafeEqual(ha, hb);
}

module.exports = { sign, safeEqual };
