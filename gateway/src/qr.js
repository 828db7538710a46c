'use strict';
const QRCode = require('qrcode');

/** The pairing QR as a `data:image/png;base64,...` URL. */
function qrPngDataUrl(text) {
  return QRCode.toDataURL(text, { type: 'image/png', errorCorrectionLevel: 'L', margin: 2, scale: 6 });
}

/** The pairing QR drawn with block characters, for a terminal. */
function qrTerminal(text) {
  return QRCode.toString(text, { type: 'terminal', small: true });
}

module.exports = { qrPngDataUrl, qrTerminal };
