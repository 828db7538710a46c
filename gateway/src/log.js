'use strict';
// One-line logs. Phone numbers are never logged in full: maskPhone keeps the last 4 digits,
// scrub() masks any run of 7+ digits inside free text (error messages, Baileys warnings).

function maskPhone(value) {
  const digits = String(value ?? '').replace(/\D/g, '');
  return digits.length <= 4 ? '***' : `***${digits.slice(-4)}`;
}

function scrub(text) {
  return String(text ?? '').replace(/\d{7,}/g, (m) => `***${m.slice(-4)}`).replace(/\s+/g, ' ');
}

function format(msg, fields) {
  const parts = [new Date().toISOString(), msg];
  for (const [k, v] of Object.entries(fields || {})) {
    if (v === undefined || v === null) continue;
    const s = String(v);
    parts.push(`${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`);
  }
  return parts.join(' ') + '\n';
}

const log = {
  info(msg, fields) { process.stdout.write(format(msg, fields)); },
  error(msg, fields) { process.stderr.write(format(msg, fields)); },
};

module.exports = { log, maskPhone, scrub };
