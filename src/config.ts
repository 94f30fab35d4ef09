// The one place that reads the environment. Every setting is parsed and validated once at start;
// a bad value stops the process with a message naming the variable. The result is frozen and
// passed explicitly (see context.ts): nothing else reads process.env. Each area's settings, their
// defaults and the reasons for them are in src/config/; the table of variables is
// src/config/variables.ts.
import { cacheConfig, type CacheConfig } from './config/cache.ts';
import { connectionConfig, type ConnectionConfig } from './config/connections.ts';
import { databaseConfig, type DatabaseConfig } from './config/database.ts';
import { limitsConfig, type LimitsConfig } from './config/limits.ts';
import { ConfigError, oneOf, type Env } from './config/parse.ts';
import { serverConfig, type NodeEnv, type ServerConfig } from './config/server.ts';
import { telemetryConfig, type TelemetryConfig } from './config/telemetry.ts';

export { ConfigError, Secret } from './config/parse.ts';
export type { NodeEnv } from './config/server.ts';
export { tracingSettings, type BatchSettings, type LogLevel, type TracesSampler, type TracingSettings } from './config/telemetry.ts';
export { ENV_VARS, type EnvVar } from './config/variables.ts';

export interface Config extends ServerConfig, ConnectionConfig, DatabaseConfig, CacheConfig, LimitsConfig, TelemetryConfig {
  readonly nodeEnv: NodeEnv;
}

export function loadConfig(env: Env = process.env): Config {
  const nodeEnv = oneOf<NodeEnv>(env, 'NODE_ENV', ['development', 'production', 'test'], 'development');
  const database = databaseConfig(env);
  const server = serverConfig(env, nodeEnv, database.dataDir);
  return Object.freeze({
    nodeEnv,
    ...server,
    ...connectionConfig(env, server.trustProxy),
    ...database,
    ...cacheConfig(env),
    ...limitsConfig(env),
    ...telemetryConfig(env, database.dataDir, nodeEnv),
  });
}

/** For process entries: a bad setting prints its message and exits 1 instead of a stack trace. */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
