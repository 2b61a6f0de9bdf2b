#!/usr/bin/env node
// match-share: an xnode query plugin written in Node.js, to show that the
// plugin contract (plugins/pb/plugin.proto) is language-neutral.
//
// Over PSI intersection, it reports for each peer how many of the querier's
// identifiers the peer also holds and what share of the querier's set that
// is, e.g. "bank-b | 1234 | 12.3". Parameter: decimals (int, default 1).
//
// What a non-Go plugin must do to be launched by xnode (go-plugin's
// handshake, see go-plugin's docs/guide-plugin-write-non-go.md):
//   1. refuse to run unless XNODE_PLUGIN_MAGIC_COOKIE=xnode-query-plugin
//      (the node sets it; it is a usability check, not security) and
//      PLUGIN_PROTOCOL_VERSIONS lists 1;
//   2. with automatic mutual TLS, PLUGIN_CLIENT_CERT holds the host's
//      certificate (PEM): make a self-signed certificate for "localhost",
//      serve TLS with it, and require client certificates signed by the
//      host's;
//   3. serve gRPC on 127.0.0.1 with xnode.plugins.v1.QueryPlugin, the health
//      service (grpc.health.v1.Health, service "plugin") and
//      plugin.GRPCController/Shutdown;
//   4. print one line on stdout:
//      1|1|tcp|127.0.0.1:PORT|grpc|BASE64(certificate DER, no padding)
//
// The node pins the SHA-256 digest of this file; it loads its .proto files
// and node_modules from beside it (install them with install.sh).
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const COOKIE_KEY = 'XNODE_PLUGIN_MAGIC_COOKIE';
const COOKIE_VALUE = 'xnode-query-plugin';
const PROTOCOL_VERSION = '1';
const MAX_CHUNK = 4096;

const here = fs.realpathSync(__dirname);
const loadOptions = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

function load(file, includeDirs) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, { ...loadOptions, includeDirs }));
}

// ---- the plugin ----

const descriptor = {
  name: 'match-share',
  version: '0.1.0',
  description: 'For each peer, how many of the querier\'s identifiers it also holds and what share that is (PSI intersection). Written in Node.js.',
  protocol: 'psi.intersection',
  params: [
    { name: 'decimals', type: 'int', required: false, default: '1', description: 'decimal places of share_percent, 0 to 6', enum: [] },
  ],
  reads: [],
  result_columns: ['peer', 'matched', 'share_percent'],
};

function accepted() {
  return 'accepted parameters: ' + descriptor.params
    .map((p) => `${p.name} (${p.type}, ${p.required ? 'required' : p.default ? 'default ' + p.default : 'optional'}): ${p.description}`)
    .join('; ');
}

class InvalidParams extends Error {}

// checkParams returns the parameters with defaults, or throws InvalidParams.
function checkParams(params) {
  const problems = [];
  for (const k of Object.keys(params || {}).sort()) {
    if (!descriptor.params.some((p) => p.name === k)) problems.push(`unknown parameter "${k}"`);
  }
  const out = {};
  for (const p of descriptor.params) {
    const v = params && Object.hasOwn(params, p.name) ? params[p.name] : p.default;
    if (p.name === 'decimals' && !/^[0-6]$/.test(v)) {
      problems.push(`parameter "decimals" is "${v}", want an integer from 0 to 6`);
    }
    out[p.name] = v;
  }
  if (problems.length > 0) {
    throw new InvalidParams(`invalid plugin parameters for plugin ${descriptor.name}: ${problems.join('; ')}; ${accepted()}`);
  }
  return out;
}

function grpcError(err) {
  if (err instanceof InvalidParams) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  return { code: grpc.status.UNKNOWN, details: String(err && err.message ? err.message : err) };
}

const queryPlugin = {
  Describe(_call, callback) {
    callback(null, descriptor);
  },

  Plan(call, callback) {
    try {
      checkParams(call.request.params);
    } catch (err) {
      callback(grpcError(err));
      return;
    }
    callback(null, { querier_columns: [], responder_columns: [], result_columns: descriptor.result_columns, vector_len: 0 });
  },

  // Prepare: every row takes part; one item chunk per row chunk, pausing
  // the input while the host is slow to read (bounded memory).
  Prepare(call) {
    let started = false;
    let done = false;
    const fail = (err) => {
      if (done) return;
      done = true;
      call.emit('error', grpcError(err));
    };
    call.on('data', (msg) => {
      if (done) return;
      try {
        if (!started) {
          if (msg.msg !== 'start') throw new Error('prepare: the first message must be start');
          checkParams(msg.start.params);
          started = true;
          return;
        }
        if (msg.msg !== 'rows') throw new Error('prepare: want a row chunk after start');
        const items = msg.rows.rows.map((r) => ({ pos: r.pos }));
        for (let i = 0; i < items.length; i += MAX_CHUNK) {
          if (!call.write({ items: items.slice(i, i + MAX_CHUNK) })) {
            call.pause();
            call.once('drain', () => call.resume());
          }
        }
      } catch (err) {
        fail(err);
      }
    });
    call.on('end', () => {
      if (done) return;
      done = true;
      call.end();
    });
    call.on('cancelled', () => { done = true; });
    call.on('error', () => { done = true; });
  },

  // Finalize: count matches per peer as they stream, then one row per peer.
  Finalize(call) {
    let start = null;
    let decimals = 1;
    let done = false;
    const counts = new Map();
    const fail = (err) => {
      if (done) return;
      done = true;
      call.emit('error', grpcError(err));
    };
    call.on('data', (msg) => {
      if (done) return;
      try {
        if (start === null) {
          if (msg.msg !== 'start') throw new Error('finalize: the first message must be start');
          decimals = Number(checkParams(msg.start.params).decimals);
          start = msg.start;
          for (const p of start.peers) counts.set(p.peer, 0);
          return;
        }
        if (msg.msg !== 'matches') throw new Error('finalize: want a match chunk after start');
        for (const m of msg.matches.matches) counts.set(m.peer, (counts.get(m.peer) || 0) + 1);
      } catch (err) {
        fail(err);
      }
    });
    call.on('end', () => {
      if (done) return;
      done = true;
      if (start === null) {
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'finalize: no start message' });
        return;
      }
      const own = Number(start.own_size);
      const rows = [];
      let total = 0;
      for (const [peer, n] of counts) {
        total += n;
        const share = own > 0 ? (100 * n) / own : 0;
        rows.push({ cells: [peer, String(n), share.toFixed(decimals)] });
      }
      for (let i = 0; i < rows.length; i += MAX_CHUNK) call.write({ rows: { rows: rows.slice(i, i + MAX_CHUNK) } });
      call.write({ summary: { entries: {
        matched_rows: String(total),
        own_size: String(own),
        peers: String(counts.size),
        revealed: 'the querier learned which of its identifiers each peer also holds (reported as counts); each peer learned only the querier\'s set size',
      } } });
      call.end();
    });
    call.on('cancelled', () => { done = true; });
    call.on('error', () => { done = true; });
  },
};

// ---- a self-signed certificate for "localhost" (ECDSA P-256), in DER ----

function derLength(n) {
  if (n < 0x80) return Buffer.from([n]);
  const bytes = [];
  for (; n > 0; n >>= 8) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
function tlv(tag, ...parts) {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}
const seq = (...parts) => tlv(0x30, ...parts);
function oid(dotted) {
  const a = dotted.split('.').map(Number);
  const out = [40 * a[0] + a[1]];
  for (const v of a.slice(2)) {
    const b = [v & 0x7f];
    for (let x = v >>> 7; x > 0; x >>>= 7) b.unshift(0x80 | (x & 0x7f));
    out.push(...b);
  }
  return tlv(0x06, Buffer.from(out));
}
function integer(buf) {
  return tlv(0x02, buf[0] & 0x80 ? Buffer.concat([Buffer.from([0]), buf]) : buf);
}
function utcTime(d) {
  const s = d.toISOString(); // 2025-01-02T03:04:05.000Z
  return tlv(0x17, Buffer.from(s.slice(2, 4) + s.slice(5, 7) + s.slice(8, 10) + s.slice(11, 13) + s.slice(14, 16) + s.slice(17, 19) + 'Z'));
}
const TRUE = tlv(0x01, Buffer.from([0xff]));
function extension(id, critical, value) {
  return critical ? seq(oid(id), TRUE, tlv(0x04, value)) : seq(oid(id), tlv(0x04, value));
}

function selfSignedCert() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const name = seq(tlv(0x31, seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from('localhost')))));
  const sigAlg = seq(oid('1.2.840.10045.4.3.2')); // ecdsa-with-SHA256
  const now = Date.now();
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // v3
    integer(crypto.randomBytes(16)),
    sigAlg,
    name,
    seq(utcTime(new Date(now - 30e3)), utcTime(new Date(now + 24 * 3600e3))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(
      extension('2.5.29.19', true, seq(TRUE)), // basicConstraints: CA
      extension('2.5.29.15', true, tlv(0x03, Buffer.from([0x02, 0x84]))), // keyUsage: digitalSignature, keyCertSign
      extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))), // serverAuth, clientAuth
      extension('2.5.29.17', false, seq(tlv(0x82, Buffer.from('localhost')))), // subjectAltName DNS:localhost
    )),
  );
  const signature = crypto.sign('sha256', tbs, privateKey); // DER Ecdsa-Sig-Value
  const der = seq(tbs, sigAlg, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const pem = '-----BEGIN CERTIFICATE-----\n' + der.toString('base64').match(/.{1,64}/g).join('\n') + '\n-----END CERTIFICATE-----\n';
  return { der, pem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) };
}

// ---- go-plugin's handshake ----

function main() {
  if (process.env[COOKIE_KEY] !== COOKIE_VALUE) {
    process.stderr.write('This is an xnode query plugin. Install it with `xnode plugin install PATH`; the node starts it.\n');
    process.exit(1);
  }
  const versions = (process.env.PLUGIN_PROTOCOL_VERSIONS || PROTOCOL_VERSION).split(',');
  if (!versions.includes(PROTOCOL_VERSION)) {
    process.stderr.write(`this plugin speaks xnode plugin protocol ${PROTOCOL_VERSION}; the host wants ${versions.join(',')}\n`);
    process.exit(1);
  }

  const plugins = load('plugin.proto', [path.join(here, '..', '..', '..', 'pb')]);
  const health = load('health.proto', [path.join(here, 'proto')]);
  const controller = load('controller.proto', [path.join(here, 'proto')]);

  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 });
  server.addService(plugins.xnode.plugins.v1.QueryPlugin.service, queryPlugin);
  server.addService(health.grpc.health.v1.Health.service, {
    Check(_call, callback) {
      callback(null, { status: 'SERVING' });
    },
  });
  server.addService(controller.plugin.GRPCController.service, {
    Shutdown(_call, callback) {
      callback(null, {});
      setTimeout(() => server.tryShutdown(() => process.exit(0)), 10).unref();
    },
  });

  let creds = grpc.ServerCredentials.createInsecure();
  let certField = '';
  const clientCert = process.env.PLUGIN_CLIENT_CERT;
  if (clientCert) {
    const cert = selfSignedCert();
    creds = grpc.ServerCredentials.createSsl(Buffer.from(clientCert), [{ private_key: Buffer.from(cert.keyPem), cert_chain: Buffer.from(cert.pem) }], true);
    certField = cert.der.toString('base64').replace(/=+$/, ''); // Go's base64.RawStdEncoding
  }
  server.bindAsync('127.0.0.1:0', creds, (err, port) => {
    if (err) {
      process.stderr.write(`failed to listen: ${err.message}\n`);
      process.exit(1);
    }
    const fields = ['1', PROTOCOL_VERSION, 'tcp', `127.0.0.1:${port}`, 'grpc'];
    if (certField) fields.push(certField);
    process.stdout.write(fields.join('|') + '\n');
  });
  // Like go-plugin's Go servers: ignore interrupts (a Ctrl-C reaches the
  // whole process group; the host shuts us down in order), exit on SIGTERM.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => process.exit(0));
}

main();
