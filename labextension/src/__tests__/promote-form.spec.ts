/**
 * The promote dialog's form: an invalid schedule (the server's preview says why) marks the form invalid,
 * which disables JupyterLab's "Create job" button; what was typed survives a reopened dialog.
 */
jest.mock('@jupyterlab/apputils', () => ({ Dialog: {}, showDialog: jest.fn(), showErrorMessage: jest.fn() }));
jest.mock('../api', () => ({ api: { preview: jest.fn() } }));
// the form uses only a Widget's node and addClass (the real @lumino/widgets needs a browser's DragEvent)
jest.mock('@lumino/widgets', () => ({
  Widget: class {
    node = document.createElement('div');
    addClass(name: string): void {
      this.node.classList.add(name);
    }
  }
}));

import { api } from '../api';
import { ApiError } from '../errors';
import { PromoteForm } from '../jobs';

const preview = api.preview as jest.Mock;
const PARAMS = { threshold: { value: 0.5, type: 'float' }, label: { value: 'nightly', type: 'str' } };
const answer = (schedule: string | null) => ({
  notebook: 'nightly.ipynb',
  parameters: PARAMS,
  parameters_cell: true,
  schedule_text: schedule ? 'at 02:00, every day' : null,
  next_runs: []
});
const settle = () => new Promise(resolve => setTimeout(resolve, 0));

beforeEach(() => preview.mockReset());

it('is invalid while the preview refuses the schedule, valid again once it is fixed', async () => {
  preview.mockResolvedValueOnce(answer('0 2 * * *'));
  const form = new PromoteForm('nightly.ipynb');
  document.body.appendChild(form.node);
  await settle();
  const inputs = () => Array.from(form.node.querySelectorAll('input'));
  expect(form.previewInvalid).toBe(false);
  expect(inputs().every(i => i.validity.valid)).toBe(true);

  const events: Event[] = [];
  document.addEventListener('input', e => events.push(e), true);
  preview.mockRejectedValueOnce(new ApiError('user', "schedule '61 2 * * *' is not a valid cron expression", 400));
  const schedule = form.node.querySelector<HTMLInputElement>('[data-testid="llmops-promote-schedule"]')!;
  schedule.value = '61 2 * * *';
  (form as any).loadPreview();
  await settle();
  expect(form.previewInvalid).toBe(true);
  expect(schedule.validity.valid).toBe(false); // :invalid -> the Dialog disables its accept button
  expect(form.node.querySelector('.jp-mod-error')).not.toBeNull();
  expect(events.length).toBeGreaterThan(0); // the Dialog re-checks on an input event
  expect(form.getValue().error).toContain('not a valid cron');

  preview.mockResolvedValueOnce(answer('30 6 * * 1-5'));
  schedule.value = '30 6 * * 1-5';
  (form as any).loadPreview();
  await settle();
  expect(form.previewInvalid).toBe(false);
  expect(schedule.validity.valid).toBe(true);
  expect(form.node.querySelector('.jp-mod-error')).toBeNull();
  expect(form.getValue().body?.schedule).toBe('30 6 * * 1-5');
  form.node.remove();
});

it('a network failure of the preview does not block the job', async () => {
  preview.mockRejectedValueOnce(new ApiError('network', 'Cannot reach the Jupyter server'));
  const form = new PromoteForm('nightly.ipynb');
  await settle();
  expect(form.previewInvalid).toBe(false);
});

it('marks a parameter of the wrong type invalid', async () => {
  preview.mockResolvedValueOnce(answer('0 2 * * *'));
  const form = new PromoteForm('nightly.ipynb');
  await settle();
  const threshold = form.node.querySelector<HTMLInputElement>('input[data-param="threshold"]')!;
  threshold.value = 'abc';
  threshold.dispatchEvent(new Event('input'));
  expect(threshold.validity.valid).toBe(false);
  expect(threshold.title).toContain('threshold must be a number');
});

it('reopens with what was typed', async () => {
  preview.mockResolvedValue(answer('15 4 * * *'));
  const first = new PromoteForm('nightly.ipynb');
  await settle();
  first.node.querySelector<HTMLInputElement>('[data-testid="llmops-promote-schedule"]')!.value = '15 4 * * *';
  first.node.querySelector<HTMLInputElement>('input[data-param="label"]')!.value = 'weekly';
  const draft = first.getDraft();
  const again = new PromoteForm('nightly.ipynb', {}, draft);
  await settle();
  expect(again.node.querySelector<HTMLInputElement>('[data-testid="llmops-promote-schedule"]')!.value).toBe('15 4 * * *');
  expect(again.node.querySelector<HTMLInputElement>('input[data-param="label"]')!.value).toBe('weekly');
  expect(again.getValue().body).toEqual({
    notebook: 'nightly.ipynb',
    name: 'nightly',
    schedule: '15 4 * * *',
    timezone: draft.timezone,
    parameters: { label: 'weekly' }
  });
});
