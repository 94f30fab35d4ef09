// Loaded before anything else, with `node --import`: npm start preloads this module's build,
// `npm run dev` and the tests this file.
// With an OTLP endpoint configured (OTEL_EXPORTER_OTLP_ENDPOINT or ..._TRACES_ENDPOINT) it starts
// the OpenTelemetry SDK, whose hooks must be in place before pg and ioredis are imported. Without
// one it does nothing but the process-wide runtime settings (runtime.ts, first for the same
// reason): the SDK is not loaded, no OpenTelemetry hook is installed, and the service runs
// exactly as without this file (docs/observability.md "What it costs" has the measurement).
import '../runtime.ts';
import { ConfigError, tracingSettings, type TracingSettings } from '../config.ts';

let settings: TracingSettings;
try {
  settings = tracingSettings(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}

if (settings.enabled) {
  const { startTracing } = await import('./sdk.ts');
  startTracing(settings);
}
