// Where a response's time goes: the server's CPU per response and PostgreSQL's time and
// statements per request (pg_stat_statements), as Markdown cells and tables.
import type { PgPerRequest } from './pgstat.ts';

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const us = (x: number) => (x >= 100 ? n0(x) : x.toFixed(1));

export function cpuCell(x: number | null | undefined): string {
  return x === null || x === undefined ? '' : us(x);
}

/** "312 (exec 120 + plan 192)", or execution alone marked when planning was not tracked. */
export function pgCell(p: PgPerRequest | null | undefined): string {
  if (!p) return '';
  return p.planningTracked
    ? `${us(p.usPerRequest)} (${us(p.execUsPerRequest)} + ${us(p.planUsPerRequest)})`
    : `${us(p.usPerRequest)} (exec only)`;
}

/** The database's backends' CPU per request (pgstat.ts); blank when not readable or not measured. */
export function pgCpuCell(p: PgPerRequest | null | undefined): string {
  return cpuCell(p?.cpuUsPerRequest);
}

export function callsCell(p: PgPerRequest | null | undefined): string {
  return p ? p.callsPerRequest.toFixed(2) : '';
}

export interface CostRow {
  scenario: string;
  config: string;
  requestsPerSec: number;
  serviceCpuUsPerResponse?: number | null | undefined;
  pg?: PgPerRequest | null | undefined;
}

/** The per-response table of a normal run; empty when nothing was measured. */
export function costTable(rows: readonly CostRow[], label: (config: string) => string = (c) => c): string[] {
  if (!rows.some((x) => x.serviceCpuUsPerResponse != null || x.pg)) return [];
  const lines = [
    '## Cost per response',
    '',
    "The server's CPU (user + system, /proc, its whole process tree) per response, and PostgreSQL's time per request from " +
      "pg_stat_statements (execution + planning, summed over the run's database, reset before the measured window), the CPU its backends used (/proc), and its statements per request.",
    '',
    '| scenario | config | req/s | CPU µs/resp | PG µs/req (exec + plan) | PG CPU µs/req | PG calls/req |',
    '|---|---|--:|--:|--:|--:|--:|',
  ];
  for (const x of rows) {
    lines.push(
      `| ${x.scenario} | ${label(x.config)} | ${n0(x.requestsPerSec)} | ${cpuCell(x.serviceCpuUsPerResponse)} | ${pgCell(x.pg)} | ${pgCpuCell(x.pg)} | ${callsCell(x.pg)} |`,
    );
  }
  lines.push('');
  return lines;
}
