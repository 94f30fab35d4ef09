// A strict reader of the Prometheus text exposition format, for the metrics tests.
import assert from 'node:assert/strict';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the Prometheus text format (0.0.4): every line is a comment, a HELP or TYPE
 * line, or a sample whose family was declared by a TYPE line before it; names, labels and
 * values are checked against the format's grammar. Throws on anything else.
 */
export function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) continue; // a plain comment
      assert.match(m[2]!, NAME, `line ${i + 1}: metric name`);
      if (m[1] === 'TYPE') {
        assert.match(m[3]!, /^(counter|gauge|histogram|summary|untyped)$/, `line ${i + 1}: type`);
        assert.ok(!types.has(m[2]!), `line ${i + 1}: ${m[2]} declared twice`);
        types.set(m[2]!, m[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    assert.ok(m, `line ${i + 1} is not a sample: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let at = 0;
      while (at < m[3].length) {
        re.lastIndex = at;
        const l = re.exec(m[3]);
        assert.ok(l, `line ${i + 1}: labels ${m[3]}`);
        labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        at = re.lastIndex;
      }
    }
    // Values as Prometheus reads them (Go's ParseFloat): NaN in any case, which matters because
    // prom-client writes "Nan" for an event-loop mean with no samples yet.
    const nan = /^nan$/i.test(m[4]!);
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    assert.ok(nan || !Number.isNaN(value), `line ${i + 1}: value ${m[4]}`);
    const name = m[1]!;
    const family = [name, name.replace(/_(bucket|sum|count)$/, '')].find((n) => types.has(n));
    assert.ok(family, `line ${i + 1}: ${name} has no TYPE line before it`);
    if (name !== family) assert.equal(types.get(family), 'histogram', `line ${i + 1}: ${name} suffix on a ${types.get(family)}`);
    samples.push({ name, labels, value });
  }
  return { samples, types };
}
