// Compare MCP conformance results per scenario and per check across targets.
//
//   node compare.mjs [--expect FILE] OUT_ROOT PROFILE TARGET...
//
// Reads OUT_ROOT/PROFILE/TARGET/server-<scenario>-<timestamp>/checks.json as
// written by `conformance server -o OUT_ROOT/PROFILE/TARGET`. The first TARGET
// is the reference (the direct run). A scenario differs when the list of
// (check id, status) pairs differs from the reference, or it is missing.
// Prints a table and a details section with the differing checks (status,
// errorMessage, details), then exits 1 if anything differs, else 0.
// Also writes OUT_ROOT/PROFILE/summary-<targets joined by +>.json.
//
// --expect FILE: also compare the reference target with FILE, the committed
// per-check results of a direct run with the pinned suite and server (so a
// broken harness cannot make every target agree on failing everything). With
// CONFORMANCE_UPDATE_EXPECTED=1 the file is (re)written instead.
//
// --stricter FILE: checks (`SCENARIO CHECK-KEY` per line, the key being
// the check id with `#N` for its Nth instance, as in the expected files; a
// `#` at the start of a line or after a space starts a comment) that a
// compared target must pass even where the reference fails: requirements
// warden enforces itself in front of an upstream that does not (issue 10,
// finding 8: contradicting Mcp-Method / Mcp-Name headers are refused before
// they reach the upstream). Such a check never counts as
// a difference when the target passes it, and always does when it does not.
//
// --skip FILE: scenarios (one per line; `#` starts a comment) that are shown
// but not compared: their verdict is `skip`, and they never make the exit
// status 1. .ci/conformance uses it for warden-stdio on scenarios its stdio
// upstream cannot serve (see tests/conformance/README.md).
import fs from 'node:fs';
import path from 'node:path';

let argv = process.argv.slice(2);
let expectFile = null;
const skip = new Set();
const stricter = new Set();
for (;;) {
  if (argv[0] === '--expect') {
    expectFile = argv[1];
    argv = argv.slice(2);
  } else if (argv[0] === '--stricter') {
    for (const line of fs.readFileSync(argv[1], 'utf8').split('\n')) {
      // `#` starts a comment only at the start or after a space: keys
      // hold `#N`.
      const words = line.replace(/(^|\s)#.*/, '').trim().split(/\s+/);
      if (words.length === 2) stricter.add(`${words[0]} ${words[1]}`);
    }
    argv = argv.slice(2);
  } else if (argv[0] === '--skip') {
    for (const line of fs.readFileSync(argv[1], 'utf8').split('\n')) {
      const name = line.replace(/#.*/, '').trim();
      if (name) skip.add(name);
    }
    argv = argv.slice(2);
  } else break;
}
const [root, profile, ...targets] = argv;
if (!root || !profile || targets.length < 1) {
  console.error('usage: compare.mjs OUT_ROOT PROFILE TARGET...');
  process.exit(2);
}

function load(target) {
  const dir = path.join(root, profile, target);
  const out = new Map();
  if (!fs.existsSync(dir)) return out;
  for (const entry of fs.readdirSync(dir)) {
    const m = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(entry);
    if (!m) continue;
    const file = path.join(dir, entry, 'checks.json');
    let checks;
    try {
      checks = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      checks = [{ id: '(checks.json unreadable)', status: 'FAILURE', errorMessage: String(e) }];
    }
    out.set(m[1], checks);
  }
  return out;
}

const results = targets.map(load);
const scenarios = [...new Set(results.flatMap((r) => [...r.keys()]))].sort();

// A check's identity within a scenario: id, with a counter for repeated ids.
function keyed(checks) {
  const seen = new Map();
  return checks.map((c) => {
    const n = (seen.get(c.id) ?? 0) + 1;
    seen.set(c.id, n);
    return { key: n > 1 ? `${c.id}#${n}` : c.id, check: c };
  });
}
const passed = (checks) => checks.filter((c) => c.status === 'SUCCESS').length;
const failed = (checks) => checks.filter((c) => c.status === 'FAILURE').length;
function cell(checks) {
  if (!checks) return 'missing';
  const f = failed(checks);
  return `${f === 0 ? 'pass' : 'FAIL'} ${passed(checks)}/${checks.length}`;
}
function signature(checks) {
  if (!checks) return null;
  return JSON.stringify(keyed(checks).map(({ key, check }) => [key, check.status]));
}
// A compared target's signature, with each --stricter check read as the
// reference's status when the target passes it (and as a failure to be
// stricter when it does not).
function comparedSignature(scenario, checks, ref) {
  if (!checks) return null;
  const refStatus = new Map(keyed(ref ?? []).map(({ key, check }) => [key, check.status]));
  return JSON.stringify(
    keyed(checks).map(({ key, check }) => {
      if (!stricter.has(`${scenario} ${key}`)) return [key, check.status];
      return [key, check.status === 'SUCCESS' ? refStatus.get(key) : 'NOT-STRICTER'];
    })
  );
}
const stricterHeld = (scenario, key, check) =>
  stricter.has(`${scenario} ${key}`) && check.status === 'SUCCESS';

const rows = [];
const details = [];
let differing = 0;
for (const s of scenarios) {
  const ref = results[0].get(s);
  const sigRef = signature(ref);
  const cells = results.map((r) => cell(r.get(s)));
  const diffTargets = [];
  results.forEach((r, i) => {
    if (i === 0) return;
    if (comparedSignature(s, r.get(s), ref) !== sigRef) diffTargets.push(i);
  });
  if (skip.has(s)) {
    rows.push([s, ...cells, diffTargets.length ? 'skip (differs)' : 'skip']);
    continue;
  }
  if (diffTargets.length) differing++;
  rows.push([s, ...cells, diffTargets.length ? 'DIFF' : 'same']);
  for (const i of diffTargets) {
    const got = results[i].get(s);
    const refMap = new Map(keyed(ref ?? []).map(({ key, check }) => [key, check]));
    const gotMap = new Map(keyed(got ?? []).map(({ key, check }) => [key, check]));
    const keys = [...new Set([...refMap.keys(), ...gotMap.keys()])];
    for (const k of keys) {
      const a = refMap.get(k);
      const b = gotMap.get(k);
      if (a?.status === b?.status || (b && stricterHeld(s, k, b))) continue;
      details.push({
        scenario: s,
        target: targets[i],
        check: k,
        [targets[0]]: a ? { status: a.status, errorMessage: a.errorMessage } : 'missing',
        [targets[i]]: b
          ? { status: b.status, errorMessage: b.errorMessage, details: b.details }
          : 'missing'
      });
    }
  }
}

const header = ['scenario', ...targets, 'verdict'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const fmt = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
console.log(`\n== profile ${profile}: ${scenarios.length} scenarios`);
console.log(fmt(header));
console.log(fmt(widths.map((w) => '-'.repeat(w))));
for (const r of rows) console.log(fmt(r));
const totals = results.map((r) => {
  let p = 0, t = 0, sp = 0;
  for (const c of r.values()) {
    p += passed(c);
    t += c.length;
    if (failed(c) === 0) sp++;
  }
  return `${sp}/${r.size} scenarios, ${p}/${t} checks`;
});
targets.forEach((t, i) => console.log(`  ${t.padEnd(widths[0])}  ${totals[i]}`));
console.log(
  differing
    ? `profile ${profile}: ${differing} scenario(s) differ from ${targets[0]}`
    : `profile ${profile}: ${targets.slice(1).join(', ')} agree(s) with ${targets[0]} on every compared check` +
      (skip.size ? ` (${rows.filter((r) => r.at(-1).startsWith('skip')).length} scenario(s) not compared)` : '')
);
if (details.length) {
  console.log(`\n-- differing checks (profile ${profile})`);
  for (const d of details) console.log(JSON.stringify(d, null, 2));
}
let expectMismatch = 0;
if (expectFile) {
  const actual = Object.fromEntries(
    scenarios.map((s) => [
      s,
      results[0].get(s) ? keyed(results[0].get(s)).map(({ key, check }) => `${key} ${check.status}`) : ['missing']
    ])
  );
  if (process.env.CONFORMANCE_UPDATE_EXPECTED === '1') {
    fs.mkdirSync(path.dirname(expectFile), { recursive: true });
    fs.writeFileSync(expectFile, JSON.stringify(actual, null, 2) + '\n');
    console.log(`wrote ${expectFile}`);
  } else if (!fs.existsSync(expectFile)) {
    console.log(`\n${expectFile} missing; create it with CONFORMANCE_UPDATE_EXPECTED=1`);
    expectMismatch++;
  } else {
    const expected = JSON.parse(fs.readFileSync(expectFile, 'utf8'));
    for (const s of [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort()) {
      const a = JSON.stringify(expected[s] ?? null);
      const b = JSON.stringify(actual[s] ?? null);
      if (a !== b) {
        expectMismatch++;
        console.log(`\n${targets[0]} differs from ${path.basename(expectFile)} on ${s}:`);
        console.log(`  expected ${a}\n  got      ${b}`);
      }
    }
    if (!expectMismatch) console.log(`${targets[0]} matches ${path.basename(expectFile)}`);
  }
}
fs.writeFileSync(
  path.join(root, profile, `summary-${targets.join('+')}.json`),
  JSON.stringify({ profile, targets, totals, rows, details }, null, 2)
);
process.exit(differing || expectMismatch ? 1 : 0);
