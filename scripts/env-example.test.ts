// .env.example must name every variable src/config.ts reads, with the default the code applies.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ENV_VARS, loadConfig } from '../src/config.ts';
import { ENV_EXAMPLE, renderEnvExample } from './env-example.ts';

const SECRET = 's'.repeat(40);

/** The names loadConfig looks up in `env`, recorded as it reads them. */
function variablesRead(env: Record<string, string>): Set<string> {
  const read = new Set<string>();
  const recording = new Proxy(env, {
    get(target, key) {
      if (typeof key === 'string') read.add(key);
      return target[key as string];
    },
  });
  loadConfig(recording);
  return read;
}

/** Every variable read with nothing set, with each documented default set, and with the alternatives some reads depend on. */
function everyVariableRead(): Set<string> {
  const defaults = Object.fromEntries(ENV_VARS.filter((v) => v.default !== undefined).map((v) => [v.name, v.default as string]));
  const read = new Set<string>();
  for (const env of [
    {},
    defaults,
    { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces', TRUST_PROXY: '1', METRICS_PORT: '9464' },
  ]) {
    for (const name of variablesRead({ JWT_SECRET: SECRET, ...env })) read.add(name);
  }
  return read;
}

test('every variable loadConfig reads is documented in ENV_VARS, and nothing else is', () => {
  const read = [...everyVariableRead()].sort();
  const documented = ENV_VARS.map((v) => v.name).sort();
  assert.deepEqual(documented, read);
});

test('.env.example names every variable loadConfig reads', async () => {
  const text = await readFile(ENV_EXAMPLE, 'utf8');
  const listed = new Set([...text.matchAll(/^# ([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]));
  const missing = [...everyVariableRead()].filter((name) => !listed.has(name));
  assert.deepEqual(missing, [], 'run `npm run env:example`');
});

test('.env.example is what `npm run env:example` writes from src/config.ts', async () => {
  assert.equal(await readFile(ENV_EXAMPLE, 'utf8'), renderEnvExample(), 'run `npm run env:example`');
});

test('setting a variable to its documented default changes nothing', () => {
  const base = loadConfig({ JWT_SECRET: SECRET });
  for (const v of ENV_VARS) {
    if (v.default === undefined) continue;
    assert.deepEqual(loadConfig({ JWT_SECRET: SECRET, [v.name]: v.default }), base, `${v.name}=${v.default}`);
  }
});

test('a documented default that differs from the code is caught', () => {
  const base = loadConfig({ JWT_SECRET: SECRET });
  assert.notDeepEqual(loadConfig({ JWT_SECRET: SECRET, PORT: '3001' }), base);
  assert.notDeepEqual(loadConfig({ JWT_SECRET: SECRET, OTEL_TRACES_SAMPLER_ARG: '0.5' }), base);
});
