import { ApiError, ENABLE_HINT, errorFromResponse, errorTitle, networkError, serverMessage } from '../errors';
import { h, notice } from '../dom';

describe('errorFromResponse', () => {
  it("reads Jupyter's {message} error shape", () => {
    expect(serverMessage('{"message": "bad cron: 61 * * * *"}')).toBe('bad cron: 61 * * * *');
    expect(serverMessage('<html>404</html>')).toBeNull();
  });

  it('a 404 page without JSON means the server extension is missing, with how to enable it', () => {
    const err = errorFromResponse(404, '<html><title>404: Not Found</title></html>');
    expect(err.kind).toBe('missing-extension');
    expect(err.message).toBe(ENABLE_HINT);
    expect(err.message).toMatch(/jupyter server extension enable llmops_lab/);
    expect(errorTitle(err)).toBe('Server extension missing');
  });

  it('a JSON 404 is an unknown run/prompt/job', () => {
    const err = errorFromResponse(404, '{"message": "No run abc"}');
    expect(err.kind).toBe('not-found');
    expect(err.message).toBe('No run abc');
  });

  it("shows the server's message when MLflow is unreachable", () => {
    const err = errorFromResponse(503, '{"message": "MLflow at http://x:5000 is unreachable: refused"}');
    expect(err.kind).toBe('unreachable');
    expect(err.message).toBe('MLflow at http://x:5000 is unreachable: refused');
    expect(errorTitle(err)).toBe('MLflow unreachable');
  });

  it('classifies auth, user and server errors', () => {
    expect(errorFromResponse(403, '').kind).toBe('auth');
    expect(errorFromResponse(400, '{"message": "max_results must be 1-500"}').message).toBe('max_results must be 1-500');
    expect(errorFromResponse(500, 'Traceback…').message).toMatch(/server log/);
    expect(networkError(new TypeError('Failed to fetch')).message).toBe('Cannot reach the Jupyter server: Failed to fetch');
    expect(errorTitle(new Error('x'))).toBe('Something went wrong');
    expect(new ApiError('user', 'm', 400)).toBeInstanceOf(Error);
  });
});

describe('dom helpers', () => {
  it('h() sets text with textContent and wires listeners', () => {
    let clicked = 0;
    const el = h('button', { class: 'a b', testid: 't', onclick: () => clicked++ }, '<b>x</b>', 3);
    expect(el.innerHTML).toBe('&lt;b&gt;x&lt;/b&gt;3');
    expect(el.className).toBe('a b');
    expect(el.dataset.testid).toBe('t');
    el.click();
    expect(clicked).toBe(1);
  });

  it('h() sets checkbox and disabled as properties', () => {
    const box = h('input', { type: 'checkbox', checked: true });
    expect(box.checked).toBe(true);
    const off = h('button', { disabled: false });
    expect(off.disabled).toBe(false);
  });

  it('notice() explains with a title and detail', () => {
    const el = notice('error', 'MLflow unreachable', 'MLflow at x is unreachable');
    expect(el.getAttribute('role')).toBe('alert');
    expect(el.dataset.testid).toBe('llmops-error');
    expect(el.textContent).toBe('MLflow unreachableMLflow at x is unreachable');
  });
});
