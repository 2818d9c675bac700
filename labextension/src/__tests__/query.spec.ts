import { apiPath, buildQuery, isSafeHttpUrl, mlflowRunUrl } from '../query';

describe('buildQuery', () => {
  it('encodes keys and values and skips empty ones', () => {
    expect(buildQuery({ notebook: 'dir/my nb.ipynb', max_results: 25, page_token: null, x: undefined, y: '' })).toBe(
      '?notebook=dir%2Fmy%20nb.ipynb&max_results=25'
    );
  });

  it('joins arrays with commas (run_ids=a,b)', () => {
    expect(buildQuery({ run_ids: ['a', 'b'] })).toBe('?run_ids=a%2Cb');
    expect(buildQuery({ run_ids: [] })).toBe('');
  });

  it('is empty without parameters', () => {
    expect(buildQuery({})).toBe('');
  });

  it('escapes characters that would start another parameter', () => {
    expect(buildQuery({ schedule: '0 2 * * *&x=1' })).toBe('?schedule=0%202%20*%20*%20*%26x%3D1');
  });
});

describe('paths and links', () => {
  it('encodes each path segment', () => {
    expect(apiPath('prompts', 'my prompt/../x', 'diff')).toBe('prompts/my%20prompt%2F..%2Fx/diff');
  });

  it('builds the MLflow run link', () => {
    expect(mlflowRunUrl('http://127.0.0.1:5000/', '3', 'abc')).toBe('http://127.0.0.1:5000/#/experiments/3/runs/abc');
  });

  it('accepts only http(s) URLs for links', () => {
    expect(isSafeHttpUrl('http://127.0.0.1:5000')).toBe(true);
    expect(isSafeHttpUrl('https://mlflow.example.com/x')).toBe(true);
    expect(isSafeHttpUrl('javascript:alert(1)')).toBe(false);
    expect(isSafeHttpUrl('not a url')).toBe(false);
    expect(isSafeHttpUrl(null)).toBe(false);
  });
});
