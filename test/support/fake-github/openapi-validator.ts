import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

/**
 * Checks the fake GitHub's response bodies against GitHub's published OpenAPI
 * description (the api.github.com file shipped in `@octokit/openapi`), so the
 * fake cannot drift from what the real API sends. Validators are compiled once
 * per operation and status, on first use, and shared by every fake in the process.
 */

interface OpenApiResponse {
  readonly $ref?: string;
  readonly content?: Record<string, { readonly schema?: unknown }>;
}

interface OpenApiOperation {
  readonly operationId: string;
  readonly responses: Record<string, OpenApiResponse>;
}

interface OpenApiDocument {
  readonly paths: Record<string, Record<string, OpenApiOperation>>;
  readonly components: { readonly responses: Record<string, OpenApiResponse> };
}

/** A response body the published description does not allow; thrown so the test that caused it fails. */
export class OpenApiViolation extends Error {
  constructor(
    readonly operation: string,
    readonly status: number,
    readonly problems: string,
  ) {
    super(`fake GitHub sent a ${status} for ${operation} that GitHub's OpenAPI description does not allow: ${problems}`);
    this.name = 'OpenApiViolation';
  }
}

const SPEC_ID = 'https://api.github.com/openapi';
// Error statuses the fake can inject on any route (rate limits, 5xx bursts) that
// many operations do not list; their body must still be GitHub's basic-error.
const GENERIC_ERROR_SCHEMA = { $ref: `${SPEC_ID}#/components/schemas/basic-error` };

let shared: { ajv: Ajv; spec: OpenApiDocument; validators: Map<string, ValidateFunction | null> } | undefined;

function load(): NonNullable<typeof shared> {
  if (shared !== undefined) return shared;
  const require = createRequire(import.meta.url);
  const specPath = require.resolve('@octokit/openapi/generated/api.github.com.json');
  const spec = convertNullable(JSON.parse(readFileSync(specPath, 'utf8'))) as OpenApiDocument;
  // strict off: the description carries OpenAPI keywords (`example`, `x-github`...) that are not JSON Schema.
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
  addFormats(ajv);
  ajv.addSchema(spec as object, SPEC_ID);
  shared = { ajv, spec, validators: new Map() };
  return shared;
}

/**
 * OpenAPI 3.0's `nullable: true` as JSON Schema: Ajv only accepts it next to a
 * `type`, and the description also puts it on `allOf`/`$ref` wrappers.
 */
function convertNullable(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(convertNullable);
  if (node === null || typeof node !== 'object') return node;
  const converted: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) converted[key] = convertNullable(value);
  if (converted.nullable !== true) return converted;
  delete converted.nullable;
  if (typeof converted.type === 'string') {
    converted.type = [converted.type, 'null'];
    if (Array.isArray(converted.enum) && !converted.enum.includes(null)) converted.enum = [...converted.enum, null];
    return converted;
  }
  return { anyOf: [converted, { type: 'null' }] };
}

/** JSON pointer escaping for a path segment. */
function pointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * The validator for `method path` answering `status`, or null when the
 * operation has no JSON body for that status (204, 304, redirects).
 */
function validatorFor(method: string, route: string, status: number): { validate: ValidateFunction | null; operation: string } {
  const { ajv, spec, validators } = load();
  const lower = method.toLowerCase();
  const operation = spec.paths[route]?.[lower];
  if (operation === undefined) throw new Error(`fake GitHub: ${method} ${route} is not an operation in GitHub's OpenAPI description`);
  const cacheKey = `${lower} ${route} ${status}`;
  if (!validators.has(cacheKey)) {
    const documented = operation.responses[String(status)];
    let schema: unknown;
    if (documented === undefined) {
      schema = status >= 400 ? GENERIC_ERROR_SCHEMA : undefined;
      if (schema === undefined && status !== 304) throw new Error(`fake GitHub: ${operation.operationId} does not document status ${status}`);
    } else {
      const responseName = documented.$ref?.replace('#/components/responses/', '');
      const response = responseName === undefined ? documented : spec.components.responses[responseName];
      if (response?.content?.['application/json']?.schema !== undefined) {
        schema =
          responseName === undefined
            ? { $ref: `${SPEC_ID}#/paths/${pointer(route)}/${lower}/responses/${status}/content/application~1json/schema` }
            : { $ref: `${SPEC_ID}#/components/responses/${pointer(responseName)}/content/application~1json/schema` };
      }
    }
    validators.set(cacheKey, schema === undefined ? null : ajv.compile(schema as object));
  }
  return { validate: validators.get(cacheKey) ?? null, operation: operation.operationId };
}

/**
 * Throws an OpenApiViolation unless `body` is what GitHub's description says
 * `method route` answers with `status`. `route` is the templated path, e.g.
 * `/repos/{owner}/{repo}/issues`.
 */
export function assertResponseMatchesOpenApi(method: string, route: string, status: number, body: unknown): void {
  const { validate, operation } = validatorFor(method, route, status);
  if (validate === null) {
    if (body !== undefined) throw new OpenApiViolation(operation, status, 'the description has no body for this status, but one was sent');
    return;
  }
  if (!validate(body)) {
    const problems = (validate.errors ?? [])
      .slice(0, 5)
      .map((error) => `${error.instancePath || '(body)'} ${error.message ?? 'is invalid'}${error.params ? ` ${JSON.stringify(error.params)}` : ''}`)
      .join('; ');
    throw new OpenApiViolation(operation, status, problems);
  }
}
