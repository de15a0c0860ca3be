// The official TypeScript MCP client (@modelcontextprotocol/sdk, as
// .ci/install-node pins it) against `warden serve`, for tests/gateway.rs:
// the second of the two concurrent clients, so the gateway is checked with
// an SDK other than the rmcp one the Rust tests use.
//
//   node client.mjs URL PLAN_JSON
//
// PLAN_JSON: {"call": {"name": TOOL, "arguments": {...}}, "read": URI,
// "prompt": NAME} (each optional). Connects with
// StreamableHTTPClientTransport to URL, lists tools (and prompts and
// resources when the server has them), does what the plan says, and prints
// one JSON object on stdout: {"server", "tools", "prompts", "resources",
// "call", "read", "prompt"}. A failure prints {"error": "..."} and exits 1.
//
// The SDK is imported from MCP_SDK_DIR (the installed package directory):
// this file lives outside target/tools/node, so a bare import would not
// resolve.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [url, planText = '{}'] = process.argv.slice(2);
const sdkDir = process.env.MCP_SDK_DIR;

function sdk(rel) {
  return import(pathToFileURL(path.join(sdkDir, 'dist/esm', rel)).href);
}

async function main() {
  if (!url || !sdkDir) throw new Error('usage: MCP_SDK_DIR=... node client.mjs URL PLAN_JSON');
  const plan = JSON.parse(planText);
  const { Client } = await sdk('client/index.js');
  const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

  const client = new Client({ name: 'gateway-ts-client', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  const out = { server: client.getServerVersion() ?? null };
  const caps = client.getServerCapabilities() ?? {};

  out.tools = (await client.listTools()).tools.map((t) => t.name);
  if (caps.prompts) out.prompts = (await client.listPrompts()).prompts.map((p) => p.name);
  if (caps.resources) out.resources = (await client.listResources()).resources.map((r) => r.uri);
  if (plan.call) out.call = await client.callTool({ name: plan.call.name, arguments: plan.call.arguments ?? {} });
  if (plan.read) out.read = await client.readResource({ uri: plan.read });
  if (plan.prompt) out.prompt = await client.getPrompt({ name: plan.prompt });

  await client.close();
  return out;
}

const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: 'timed out after 60 s' }));
  process.exit(1);
}, 60_000);

main().then(
  (out) => {
    clearTimeout(timer);
    console.log(JSON.stringify(out));
    process.exit(0);
  },
  (err) => {
    clearTimeout(timer);
    console.log(JSON.stringify({ error: String(err?.stack ?? err) }));
    process.exit(1);
  },
);
