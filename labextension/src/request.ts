/**
 * The only place that talks to the server extension (docs/server-api.md).
 * ServerConnection.makeRequest adds the token/cookie and the XSRF header.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError, errorFromResponse, networkError } from './errors';

export const API_ROOT = 'llmops-lab/api';

let defaultSettings: ServerConnection.ISettings | null = null;

function settings(): ServerConnection.ISettings {
  if (!defaultSettings) {
    defaultSettings = ServerConnection.makeSettings();
  }
  return defaultSettings;
}

/** The full URL of an endpoint (for a download link: the browser sends the session cookie). */
export function apiUrl(endpoint: string): string {
  return URLExt.join(settings().baseUrl, API_ROOT, endpoint);
}

/** A GET whose answer is text (an HTML report), not JSON. */
export async function requestText(endpoint: string): Promise<string> {
  const s = settings();
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(URLExt.join(s.baseUrl, API_ROOT, endpoint), { method: 'GET' }, s);
  } catch (reason) {
    throw networkError(reason);
  }
  const text = await response.text();
  if (!response.ok) {
    throw errorFromResponse(response.status, text);
  }
  return text;
}

/** `endpoint` is already encoded (see query.ts apiPath/buildQuery). */
export async function requestAPI<T>(
  endpoint: string,
  init: { method?: string; body?: unknown } = {}
): Promise<T> {
  const s = settings();
  const url = URLExt.join(s.baseUrl, API_ROOT, endpoint);
  const requestInit: RequestInit = { method: init.method ?? 'GET' };
  if (init.body !== undefined) {
    requestInit.body = JSON.stringify(init.body);
    requestInit.headers = { 'Content-Type': 'application/json' };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, requestInit, s);
  } catch (reason) {
    throw networkError(reason);
  }
  const text = await response.text();
  if (!response.ok) {
    throw errorFromResponse(response.status, text);
  }
  if (!text) {
    return {} as T;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError('server', `The server answered ${endpoint} with something that is not JSON.`);
  }
}
