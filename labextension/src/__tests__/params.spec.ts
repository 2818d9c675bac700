import { changedParameters, formatParamValue, ParamError, parseParametersCell, parseParamValue } from '../params';

describe('parseParamValue', () => {
  it('converts by the Python type name', () => {
    expect(parseParamValue('n', ' 42 ', 'int')).toBe(42);
    expect(parseParamValue('t', '0.5', 'float')).toBe(0.5);
    expect(parseParamValue('b', 'False', 'bool')).toBe(false);
    expect(parseParamValue('b', 'true', 'bool')).toBe(true);
    expect(parseParamValue('s', ' keep spaces ', 'str')).toBe(' keep spaces ');
    expect(parseParamValue('l', '[1, "a"]', 'list')).toEqual([1, 'a']);
    expect(parseParamValue('x', 'None', 'NoneType')).toBeNull();
    expect(parseParamValue('x', '3', 'NoneType')).toBe(3);
    expect(parseParamValue('x', 'abc', 'NoneType')).toBe('abc');
  });

  it('explains a bad value in one line', () => {
    expect(() => parseParamValue('rows', '1.5', 'int')).toThrow(new ParamError('rows must be an integer, got "1.5"'));
    expect(() => parseParamValue('t', 'hot', 'float')).toThrow(ParamError);
    expect(() => parseParamValue('t', '', 'float')).toThrow(ParamError);
    expect(() => parseParamValue('b', 'maybe', 'bool')).toThrow(/true or false/);
    expect(() => parseParamValue('d', '{bad', 'dict')).toThrow(/JSON/);
  });

  it('round-trips through the input text', () => {
    expect(formatParamValue('gpt')).toBe('gpt');
    expect(formatParamValue(3)).toBe('3');
    expect(formatParamValue(null)).toBe('null');
    expect(formatParamValue([1, 2])).toBe('[1,2]');
  });
});

describe('changedParameters', () => {
  const original = {
    model: { value: 'local:smollm2-135m', type: 'str' },
    rows: { value: 20, type: 'int' },
    temperature: { value: 0.0, type: 'float' }
  };

  it('sends only the edited values, typed', () => {
    expect(changedParameters(original, { model: 'openai:gpt-4o-mini', rows: '20', temperature: '0', extra: '1' })).toEqual({
      model: 'openai:gpt-4o-mini'
    });
    expect(changedParameters(original, { rows: '50' })).toEqual({ rows: 50 });
  });

  it('throws for an invalid edit', () => {
    expect(() => changedParameters(original, { rows: 'many' })).toThrow(ParamError);
  });
});

describe('parseParametersCell', () => {
  it('reads simple literal assignments', () => {
    const source = [
      '# Parameters',
      'model = "local:smollm2-135m"  # the model',
      "name = 'it''s'",
      'rows = 20',
      'temperature: float = 0.5',
      'debug = False',
      'limit = None',
      'hash = "a#b"',
      'data = load()  # not a literal',
      '    indented = 1'
    ].join('\n');
    expect(parseParametersCell(source)).toEqual({
      model: { value: 'local:smollm2-135m', type: 'str' },
      rows: { value: 20, type: 'int' },
      temperature: { value: 0.5, type: 'float' },
      debug: { value: false, type: 'bool' },
      limit: { value: null, type: 'NoneType' },
      hash: { value: 'a#b', type: 'str' }
    });
  });

  it('is empty for an empty cell', () => {
    expect(parseParametersCell('')).toEqual({});
  });
});
