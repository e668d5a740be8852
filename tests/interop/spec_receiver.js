// The specification's Node.js/Express verification, run for real against avr-webhookd's
// hmac-sha256 mode (tests/integration/test_node_interop.cpp). Plain `http` stands in for Express:
// express.json() is JSON.parse of the body, and the middleware below is the specification's.
//   node spec_receiver.js SECRET   -> prints "listening PORT", then one line per request
const crypto = require('crypto');
const http = require('http');

const secret = process.argv[2];

function verifyWebhookSignature(payload, signature, secret) {
  const expectedSignature = crypto
    .createHmac('sha256', secret)
    .update(payload)
    .digest('hex');

  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expectedSignature)
  );
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    const body = JSON.parse(raw);                      // what express.json() does
    const signature = req.headers['x-avr-webhook-secret'];
    const payload = JSON.stringify(body);              // the specification's middleware
    let ok = false;
    try { ok = verifyWebhookSignature(payload, signature, secret); } catch (e) { ok = false; }
    console.log(JSON.stringify({ ok, type: body.type, sameBytes: payload === raw }));
    res.writeHead(ok ? 200 : 401);
    res.end(ok ? 'OK' : 'Unauthorized');
  });
});
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
