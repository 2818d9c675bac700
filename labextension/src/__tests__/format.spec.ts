import { formatAge, formatCost, formatLatency, formatMetric, formatScore, formatTokens, MISSING, truncate } from '../format';

describe('formatLatency', () => {
  it.each([
    [0, '0 ms'],
    [412.4, '412 ms'],
    [999, '999 ms'],
    [1234, '1.23 s'],
    [12_345, '12.3 s'],
    [75_000, '1m 15s']
  ])('%p -> %p', (ms, text) => expect(formatLatency(ms)).toBe(text));

  it('renders missing and invalid values as a dash', () => {
    expect(formatLatency(null)).toBe(MISSING);
    expect(formatLatency(undefined)).toBe(MISSING);
    expect(formatLatency(NaN)).toBe(MISSING);
    expect(formatLatency(-5)).toBe(MISSING);
  });
});

describe('formatTokens', () => {
  it.each([
    [96, '96'],
    [1000, '1k'],
    [1234, '1.2k'],
    [2_500_000, '2.5M']
  ])('%p -> %p', (n, text) => expect(formatTokens(n)).toBe(text));

  it('dash for null', () => expect(formatTokens(null)).toBe(MISSING));
});

describe('formatCost', () => {
  it.each([
    [0, '$0'],
    [0.00002, '$0.00002'],
    [0.0123456, '$0.0123'],
    [0.5, '$0.5'],
    [12.5, '$12.50'],
    [1.2e-7, '$1.2e-7']
  ])('%p -> %p', (usd, text) => expect(formatCost(usd)).toBe(text));

  it('dash for null', () => expect(formatCost(undefined)).toBe(MISSING));
});

describe('formatScore and formatMetric', () => {
  it('names the score', () => {
    expect(formatScore({ name: 'contains', value: 0.85 })).toBe('contains 0.85');
    expect(formatScore({ name: 'exact', value: 1 })).toBe('exact 1');
    expect(formatScore({ name: 'x', value: 2 / 3 })).toBe('x 0.667');
    expect(formatScore(null)).toBe(MISSING);
    expect(formatScore({ name: 'x', value: null })).toBe(MISSING);
  });

  it('formats metrics of any size', () => {
    expect(formatMetric(96)).toBe('96');
    expect(formatMetric(0.25)).toBe('0.25');
    expect(formatMetric(412.456)).toBe('412.46');
    expect(formatMetric(0.00002)).toBe('2.00e-5');
    expect(formatMetric(undefined)).toBe(MISSING);
  });
});

describe('formatAge and truncate', () => {
  const now = Date.UTC(2025, 0, 1, 12, 0, 0);
  it('is relative for recent runs', () => {
    expect(formatAge(now - 10_000, now)).toBe('just now');
    expect(formatAge(now - 5 * 60_000, now)).toBe('5 min ago');
    expect(formatAge(now - 3 * 3600_000, now)).toBe('3 h ago');
    expect(formatAge(now - 3 * 86_400_000, now)).toBe(new Date(now - 3 * 86_400_000).toLocaleString());
    expect(formatAge(null, now)).toBe(MISSING);
  });

  it('cuts long text on one line', () => {
    expect(truncate('a\n  b')).toBe('a b');
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(truncate(null)).toBe('');
  });
});
