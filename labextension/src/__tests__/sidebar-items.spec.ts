/**
 * The panel details: facts of runs that are not one call, a batch run's result rows, the store's
 * path cut to the panel, and a prompt version inserted with its generation parameters.
 */
jest.mock('@jupyterlab/apputils', () => ({ showErrorMessage: jest.fn() }));
jest.mock('../api', () => ({ api: {} }));

import { MISSING, runFacts, shortenPath } from '../format';
import { llmCellSource } from '../prompts';
import { renderResults } from '../runs';

describe('runFacts', () => {
  it('shows the facts of one call', () => {
    expect(
      runFacts({ kind: 'single', model: 'local:smollm2', prompt: 'p@1', latency_ms: 412, total_tokens: 96, cost_usd: 0 })
    ).toEqual(['local:smollm2', 'p@1', '412 ms', '96 tok', '$0']);
  });

  it('shows a job run its metrics and duration instead of empty placeholders', () => {
    const facts = runFacts({ kind: 'job', job_metrics: { accuracy: 0.9, words: 3 }, duration_s: 12.5 });
    expect(facts).toEqual(['accuracy 0.9', 'words 3', 'ran 12.5 s']);
    expect(facts.join(' · ')).not.toContain(MISSING);
  });

  it('shows a comparison its variant and row counts', () => {
    expect(runFacts({ kind: 'compare', variants: 2, rows: 3 })).toEqual(['2 variants', '3 rows']);
    expect(runFacts({ kind: 'compare', variants: 1, rows: 1 })).toEqual(['1 variant', '1 row']);
  });

  it('says nothing is known with a single dash', () => {
    expect(runFacts({ kind: 'job' })).toEqual([MISSING]);
  });
});

describe('shortenPath', () => {
  const uri = 'sqlite:////home/ada/projects/customer-support/evals/.llmops/mlflow.db';

  it('keeps short paths whole', () => {
    expect(shortenPath('sqlite:///a/mlflow.db', 48)).toBe('sqlite:///a/mlflow.db');
  });

  it('cuts in the middle, keeping the scheme and the file name, within the width', () => {
    const short = shortenPath(uri, 40);
    expect(short.length).toBeLessThanOrEqual(40);
    expect(short.startsWith('sqlite:')).toBe(true);
    expect(short.endsWith('/.llmops/mlflow.db')).toBe(true);
    expect(short).toContain('…');
  });
});

describe('llmCellSource', () => {
  it('inserts the version model and generation parameters as options', () => {
    expect(llmCellSource('summarize', 'Summarize: {{ text }}', 'local:smollm2', { temperature: 0, max_tokens: 64 })).toBe(
      '%%llm local:smollm2 --name summarize --temperature 0 --max-tokens 64\nSummarize: {{ text }}'
    );
  });

  it('quotes values the magic would split and keeps a single stop sequence only', () => {
    expect(llmCellSource('p', 'T', null, { stop: ['\n\n'], top_p: 0.9, seed: 7 })).toBe(
      "%%llm --name p --top-p 0.9 --seed 7 --stop '\n\n'\nT"
    );
    expect(llmCellSource('p', 'T', null, { stop: ['a', 'b'], logit_bias: { 1: 2 } })).toBe('%%llm --name p\nT');
    expect(llmCellSource('p', 'T', null, { stop: "it's" })).toBe(`%%llm --name p --stop 'it'"'"'s'\nT`);
  });

  it('leaves out a model that is not provider:model, and works without parameters', () => {
    expect(llmCellSource('p', 'T', 'gpt-4o')).toBe('%%llm --name p\nT');
  });
});

describe('renderResults', () => {
  it('renders the first rows: inputs, output, scores right-aligned', () => {
    const table = renderResults({
      columns: ['text', 'output', 'exact_label'],
      score_columns: ['exact_label'],
      rows: [
        ['a', 'echo: a', '1.0'],
        ['b', 'echo: b', '0.0']
      ],
      total: 30,
      truncated: true
    });
    const headers = Array.from(table.querySelectorAll('th')).map(th => th.textContent);
    expect(headers).toEqual(['text', 'output', 'exact_label']);
    expect(table.querySelectorAll('tbody tr')).toHaveLength(2);
    expect(table.querySelector('tbody tr td:last-child')!.className).toBe('llmops-num');
    expect(table.querySelector('tbody tr td')!.getAttribute('title')).toBe('a');
  });

  it('says so when there are no rows', () => {
    expect(renderResults({ columns: [], score_columns: [], rows: [], total: 0, truncated: false }).textContent).toBe('No rows.');
  });
});
