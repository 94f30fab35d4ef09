// Validation is done by ajv from the route schemas (the same schemas that serialize responses
// and generate the OpenAPI document). This file holds the two compilers and the translation of
// ajv's errors into the contract's messages: missing, null or blank required fields are
// "can't be blank" (SPEC.md "Errors"), everything else says what is wrong with the value.
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import type { FastifyRequest, FastifySchemaCompiler } from 'fastify';

const shared: Options = { useDefaults: true, allErrors: false, strict: false };
// Bodies are JSON and must have the right types: 123 is not a title. Unknown properties are
// removed (schemas say additionalProperties: false), so nothing unexpected is ever stored.
const bodyAjv = new Ajv({ ...shared, coerceTypes: false, removeAdditional: true });
// Query strings and path parameters are text by nature: "?limit=5" becomes the integer 5.
const textAjv = new Ajv({ ...shared, coerceTypes: 'array', removeAdditional: true });

// PostgreSQL text cannot hold U+0000: a NUL that reached a query failed there with SQLSTATE 22021
// and became an opaque 500 (`{"comment":{"body":"a\u0000b"}}`, `GET /api/profiles/a%00b`). It
// is bad input, so it is refused here, after the schema passed, as a 422 keyed by its field.
// The check runs on every validated part of every request: it allocates nothing until it finds
// a NUL (the JSON pointer is built only then; building it for every key on the way, as first
// written, was 2.5% of a cached list read's CPU).
function firstNulPath(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const v = (value as Record<string, unknown>)[key];
    if (typeof v !== 'object' && typeof v !== 'string') continue;
    if (!hasNul(v)) continue;
    return firstNulPath(v, `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`);
  }
  return undefined;
}

function hasNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (value === null || typeof value !== 'object') return false;
  for (const key in value) if (Object.hasOwn(value, key) && hasNul((value as Record<string, unknown>)[key])) return true;
  return false;
}

function rejectingNul(validate: ValidateFunction): ValidateFunction {
  const wrapped = function (this: unknown, data: unknown, cxt?: Parameters<ValidateFunction>[1]): boolean {
    const valid = validate.call(this, data, cxt);
    const path = valid ? firstNulPath(data, '') : undefined;
    wrapped.errors = valid
      ? path === undefined
        ? null
        : [{ keyword: 'nul', instancePath: path, schemaPath: '#', params: {}, message: 'must not contain NUL characters' }]
      : validate.errors;
    return wrapped.errors === null;
  } as ValidateFunction;
  // Fastify passes the parent data (so ajv can apply defaults to a root value) only to
  // functions that carry ajv's schemaEnv.
  wrapped.schemaEnv = validate.schemaEnv;
  wrapped.schema = validate.schema;
  return wrapped;
}

// ---------------------------------------------------------------------------------------------
// Every field's error at once. ajv stops at the first error (allErrors: false): allErrors would
// make each invalid request pay for every keyword of every item (a 1 MB body holds ~300k array
// items, each an error object) and the error list would grow with the input. Instead, when the
// fail-fast validator refuses, each declared field of the object that holds the fields (the
// body's wrapper, or the query's or the path's root) is checked on its own by a fail-fast
// validator of its own: at most one error per declared field, a bound set by the schema, not
// by the client. The full validator still decides validity; this pass only explains.

/** The property schemas of an object schema, and which of them are required. */
interface ObjectLike {
  type?: unknown;
  properties?: Record<string, object>;
  required?: string[];
}

interface FieldPlan {
  /** JSON pointer of the object holding the fields: '' for the root, '/user' for a wrapper. */
  pointer: string;
  key: string | undefined;
  required: ReadonlySet<string>;
  fields: readonly (readonly [name: string, validate: ValidateFunction])[];
}

function fieldPlan(ajv: Ajv, schema: ObjectLike, httpPart: string | undefined): FieldPlan | undefined {
  let holder = schema;
  let key: string | undefined;
  // `{"user": {...}}`: the fields are the wrapper's.
  const props = Object.entries(schema.properties ?? {});
  if (httpPart === 'body' && props.length === 1 && (props[0]![1] as ObjectLike).properties) {
    key = props[0]![0];
    holder = props[0]![1];
  }
  if (!holder.properties) return undefined;
  return {
    pointer: key === undefined ? '' : `/${key}`,
    key,
    required: new Set(holder.required ?? []),
    fields: Object.entries(holder.properties).map(([name, s]) => [name, ajv.compile(s)] as const),
  };
}

/** Each field's first error, in the schema's order (a missing required field as ajv reports it). */
function fieldErrors(plan: FieldPlan, data: unknown): ErrorObject[] {
  const holder = plan.key === undefined ? data : (data as Record<string, unknown> | null | undefined)?.[plan.key];
  if (holder === null || typeof holder !== 'object' || Array.isArray(holder)) return [];
  const found: ErrorObject[] = [];
  for (const [name, validate] of plan.fields) {
    if (!Object.hasOwn(holder, name)) {
      if (plan.required.has(name)) {
        found.push({ keyword: 'required', instancePath: plan.pointer, schemaPath: '#/required', params: { missingProperty: name } });
      }
      continue;
    }
    if (validate((holder as Record<string, unknown>)[name])) continue;
    const e = validate.errors?.[0];
    if (e) found.push({ ...e, instancePath: `${plan.pointer}/${name.replace(/~/g, '~0').replace(/\//g, '~1')}${e.instancePath}` });
  }
  return found;
}

function explainingAll(validate: ValidateFunction, plan: FieldPlan | undefined): ValidateFunction {
  if (!plan) return validate;
  const wrapped = function (this: unknown, data: unknown, cxt?: Parameters<ValidateFunction>[1]): boolean {
    const valid = validate.call(this, data, cxt);
    wrapped.errors = validate.errors;
    if (!valid) {
      const all = fieldErrors(plan, data);
      if (all.length > 0) wrapped.errors = all;
    }
    return valid;
  } as ValidateFunction;
  wrapped.schemaEnv = validate.schemaEnv;
  wrapped.schema = validate.schema;
  return wrapped;
}

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : textAjv;
  return rejectingNul(explainingAll(ajv.compile(schema), fieldPlan(ajv, schema, httpPart)));
};

type ErrorMap = Record<string, string[]>;

function isBlank(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === 'string' && v.trim() === '');
}

function valueAt(root: unknown, pointer: string): unknown {
  let cur: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = Object.hasOwn(cur, key) ? (cur as Record<string, unknown>)[key] : undefined;
  }
  return cur;
}

const A_OR_AN: Record<string, string> = { integer: 'an integer', array: 'an array', object: 'an object' };

function describe(e: ErrorObject, value: unknown): string {
  if (isBlank(value)) return "can't be blank";
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type': {
      const types = String(p.type)
        .split(',')
        .filter((t) => t !== 'null');
      return `must be ${types.map((t) => A_OR_AN[t] ?? `a ${t}`).join(' or ')}`;
    }
    case 'minLength':
      return `is too short (minimum is ${String(p.limit)} characters)`;
    case 'maxLength':
      return `is too long (maximum is ${String(p.limit)} characters)`;
    case 'maxItems':
      return `has too many items (maximum is ${String(p.limit)})`;
    case 'minimum':
      return `must be greater than or equal to ${String(p.limit)}`;
    case 'maximum':
      return `must be less than or equal to ${String(p.limit)}`;
    case 'nul':
      return 'must not contain NUL characters';
    default:
      return 'is invalid';
  }
}

interface ObjectSchema {
  properties?: Record<string, { required?: string[] }>;
}

/** At most this many messages in one answer, whatever the schema and the input. */
export const MAX_VALIDATION_MESSAGES = 10;

/**
 * Translate ajv's errors (one per field, see fieldErrors) into the error map, at most
 * MAX_VALIDATION_MESSAGES messages. `{"user":{...}}` bodies are wrapped; a missing (or
 * non-object) wrapper means every required field inside it is blank, as the suite expects.
 */
export function validationErrors(errors: ErrorObject[], part: string | undefined, request: FastifyRequest): ErrorMap {
  if (errors.length === 0) return { request: ['is invalid'] };
  // A Map, then fromEntries: a field may be named `__proto__` (a query key), which an
  // assignment to a plain object would take for its prototype.
  const map = new Map<string, string[]>();
  let count = 0;
  collect: for (const e of errors) {
    for (const [field, messages] of Object.entries(translate(e, part, request))) {
      for (const message of messages) {
        if (count >= MAX_VALIDATION_MESSAGES) break collect;
        const list = map.get(field) ?? [];
        map.set(field, list);
        if (list.includes(message)) continue;
        list.push(message);
        count++;
      }
    }
  }
  return Object.fromEntries(map);
}

function translate(e: ErrorObject, part: string | undefined, request: FastifyRequest): ErrorMap {
  const source: unknown =
    part === 'body' ? request.body : part === 'querystring' ? request.query : part === 'params' ? request.params : undefined;
  const segments = e.instancePath.split('/').slice(1);
  const bodySchema = request.routeOptions.schema?.body as ObjectSchema | undefined;

  if (part === 'body') {
    const wrapper = Object.keys(bodySchema?.properties ?? {})[0];
    const wrapperMissing = (e.keyword === 'required' && segments.length === 0) || (e.keyword === 'type' && segments.length <= 1);
    if (wrapper && wrapperMissing) {
      const required = bodySchema?.properties?.[wrapper]?.required ?? [];
      if (required.length === 0) return { [wrapper]: ["can't be blank"] };
      return Object.fromEntries(required.map((f) => [f, ["can't be blank"]]));
    }
    // Drop the wrapper: errors are keyed by field, `tagList` for `/article/tagList/3`.
    segments.shift();
  }
  if (e.keyword === 'required') {
    const missing = String((e.params as { missingProperty: string }).missingProperty);
    return { [missing]: ["can't be blank"] };
  }
  const field = (segments[0] ?? part ?? 'request').replace(/~1/g, '/').replace(/~0/g, '~');
  return { [field]: [describe(e, valueAt(source, e.instancePath))] };
}
