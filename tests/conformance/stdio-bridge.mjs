// Streamable HTTP -> stdio bridge, so the conformance server suite (which only
// speaks HTTP) can drive an MCP server that is served over stdio, such as
// `warden proxy` without --listen.
//
//   node stdio-bridge.mjs PORT -- COMMAND [ARGS...]
//
// Listens on 127.0.0.1:PORT/mcp. Each HTTP session (started by an initialize
// POST) spawns its own COMMAND and relays JSON-RPC messages verbatim both ways.
// Server-to-client notifications and requests are put on the SSE stream of
// the client request they belong to: the request whose progressToken they
// carry, else the most recent request still in flight, else the standalone
// GET stream. That is a heuristic, but the same one for every target, so
// comparing "bridge -> server" with "bridge -> warden -> server" is fair.
// Stateless 2026-07-28 requests (no initialize) are not bridged (HTTP 400).
// Installed into the tools prefix by .ci/install-node so the SDK resolves.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const args = process.argv.slice(2);
const port = Number(args[0]);
const sep = args.indexOf('--');
if (!port || sep < 0 || sep === args.length - 1) {
  console.error('usage: stdio-bridge.mjs PORT -- COMMAND [ARGS...]');
  process.exit(2);
}
const [command, ...commandArgs] = args.slice(sep + 1);

const sessions = new Map(); // session id -> { http, child }

function isInitialize(body) {
  const msgs = Array.isArray(body) ? body : [body];
  return msgs.some((m) => m && m.method === 'initialize');
}

async function newSession() {
  const inFlight = []; // client request ids, oldest first
  const progressTokens = new Map(); // progressToken -> request id
  const child = new StdioClientTransport({ command, args: commandArgs, env: process.env, stderr: 'inherit' });
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (sid) => sessions.set(sid, { transport, child })
  });
  transport.onmessage = (msg) => {
    if (msg.method !== undefined && msg.id !== undefined) {
      inFlight.push(msg.id);
      const token = msg.params?._meta?.progressToken;
      if (token !== undefined) progressTokens.set(token, msg.id);
    }
    child.send(msg).catch((e) => console.error('bridge: send to child failed:', e));
  };
  child.onmessage = (msg) => {
    const isResponse = msg.method === undefined && msg.id !== undefined;
    let options;
    if (isResponse) {
      const i = inFlight.indexOf(msg.id);
      if (i >= 0) inFlight.splice(i, 1);
      for (const [t, id] of progressTokens) if (id === msg.id) progressTokens.delete(t);
    } else {
      const token = msg.params?.progressToken;
      const related =
        token !== undefined && progressTokens.has(token)
          ? progressTokens.get(token)
          : inFlight[inFlight.length - 1];
      if (related !== undefined) options = { relatedRequestId: related };
    }
    transport.send(msg, options).catch((e) => console.error('bridge: send to client failed:', e.message));
  };
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    if (transport.sessionId) sessions.delete(transport.sessionId);
    transport.close().catch(() => {});
    child.close().catch(() => {});
  };
  child.onclose = close;
  transport.onclose = close;
  await child.start();
  await transport.start();
  return transport;
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

const server = http.createServer(async (req, res) => {
  try {
    if (new URL(req.url, 'http://x').pathname !== '/mcp') {
      res.writeHead(404).end();
      return;
    }
    const sid = req.headers['mcp-session-id'];
    let body;
    if (req.method === 'POST') {
      try {
        body = await readJson(req);
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } }));
        return;
      }
    }
    let transport;
    if (sid && sessions.has(sid)) {
      transport = sessions.get(sid).transport;
    } else if (!sid && req.method === 'POST' && isInitialize(body)) {
      transport = await newSession();
    } else if (sid) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
      return;
    } else {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: no session (the bridge serves sessions started by initialize only)' } }));
      return;
    }
    await transport.handleRequest(req, res, body);
  } catch (e) {
    console.error('bridge: request failed:', e);
    if (!res.headersSent) res.writeHead(500).end();
  }
});
server.listen(port, '127.0.0.1', () => console.error(`stdio-bridge: http://127.0.0.1:${port}/mcp -> ${command}`));
const shutdown = () => {
  for (const { transport, child } of sessions.values()) {
    transport.close().catch(() => {});
    child.close().catch(() => {});
  }
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
