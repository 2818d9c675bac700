/**
 * What a failed request means for the user. Pure, so the panel's explanations are unit tested.
 */

export const ENABLE_HINT =
  'The llmops-lab server extension is not running in this Jupyter server. Install the package ' +
  '(pip install llmops-lab) in the environment that runs Jupyter, check ' +
  '"jupyter server extension list" shows llmops_lab enabled (enable it with ' +
  '"jupyter server extension enable llmops_lab"), then restart Jupyter.';

export type ErrorKind = 'missing-extension' | 'unreachable' | 'auth' | 'not-found' | 'user' | 'server' | 'network';

export class ApiError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly status: number = 0
  ) {
    super(message);
  }
}

/** The server's one-line message from a `{"message": …}` body, if the body is that JSON shape. */
export function serverMessage(body: string): string | null {
  try {
    const data = JSON.parse(body);
    if (data && typeof data.message === 'string' && data.message.trim()) {
      return data.message.trim();
    }
    if (data && typeof data.reason === 'string' && data.reason.trim()) {
      return data.reason.trim();
    }
  } catch {
    // not JSON: an HTML error page from Jupyter itself
  }
  return null;
}

/**
 * Interprets an HTTP failure. A 404 without a JSON message is Jupyter's own "page not found":
 * the route does not exist, so the server extension is not loaded.
 */
export function errorFromResponse(status: number, body: string): ApiError {
  const message = serverMessage(body);
  if (status === 404 && message === null) {
    return new ApiError('missing-extension', ENABLE_HINT, status);
  }
  if (status === 401 || status === 403) {
    return new ApiError(
      'auth',
      message ?? 'Jupyter refused the request: log in again (reload the page) and retry.',
      status
    );
  }
  if (status === 404) {
    return new ApiError('not-found', message ?? 'Not found.', status);
  }
  if (status === 503) {
    return new ApiError('unreachable', message ?? 'MLflow is unreachable.', status);
  }
  if (status >= 400 && status < 500) {
    return new ApiError('user', message ?? `Request rejected (HTTP ${status}).`, status);
  }
  return new ApiError(
    'server',
    message ?? `The llmops-lab server extension failed (HTTP ${status}); see the Jupyter server log.`,
    status
  );
}

/** A fetch that never reached the server (Jupyter stopped, network down). */
export function networkError(reason: unknown): ApiError {
  const detail = reason instanceof Error ? reason.message : String(reason);
  return new ApiError('network', `Cannot reach the Jupyter server: ${detail}`);
}

/** A short title for an error box. */
export function errorTitle(error: unknown): string {
  if (!(error instanceof ApiError)) {
    return 'Something went wrong';
  }
  switch (error.kind) {
    case 'missing-extension':
      return 'Server extension missing';
    case 'unreachable':
      return 'MLflow unreachable';
    case 'auth':
      return 'Not authorized';
    case 'not-found':
      return 'Not found';
    case 'network':
      return 'Jupyter server unreachable';
    case 'user':
      return 'Request rejected';
    default:
      return 'Server error';
  }
}
