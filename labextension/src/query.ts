/**
 * Query strings and paths for the REST API (docs/server-api.md).
 */

export type QueryValue = string | number | boolean | null | undefined | string[];

/** {a: 1, b: undefined, c: ['x', 'y']} -> "?a=1&c=x%2Cy"; empty, null and undefined are left out. */
export function buildQuery(params: Record<string, QueryValue>): string {
  const parts: string[] = [];
  for (const [key, raw] of Object.entries(params)) {
    if (raw === undefined || raw === null || raw === '') {
      continue;
    }
    const value = Array.isArray(raw) ? raw.join(',') : String(raw);
    if (Array.isArray(raw) && raw.length === 0) {
      continue;
    }
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** Joins path segments, encoding each one ("prompts", "my prompt", "diff" -> "prompts/my%20prompt/diff"). */
export function apiPath(...segments: string[]): string {
  return segments.map(s => encodeURIComponent(s)).join('/');
}

/** Link to a run in the MLflow UI: {url}/#/experiments/{experiment_id}/runs/{run_id}. */
export function mlflowRunUrl(baseUrl: string, experimentId: string, runId: string): string {
  const base = baseUrl.replace(/\/+$/, '');
  return `${base}/#/experiments/${encodeURIComponent(experimentId)}/runs/${encodeURIComponent(runId)}`;
}

/** Only http(s) URLs are put into href attributes. */
export function isSafeHttpUrl(url: string | null | undefined): boolean {
  if (!url) {
    return false;
  }
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:';
  } catch {
    return false;
  }
}
