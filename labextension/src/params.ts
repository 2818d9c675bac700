/**
 * Notebook parameters for "Promote this notebook…": read the parameters cell, edit values as text,
 * convert them back to typed JSON values.
 */

export type ParamValue = string | number | boolean | null | ParamValue[] | { [k: string]: ParamValue };

export interface IParameter {
  value: ParamValue;
  type: string;
}

export class ParamError extends Error {}

/** The text shown in an input for a value. */
export function formatParamValue(value: ParamValue): string {
  if (typeof value === 'string') {
    return value;
  }
  return JSON.stringify(value);
}

/**
 * The typed value for an edited input, by the parameter's Python type name
 * (int, float, bool, str, NoneType, list, dict). Throws ParamError with a one-line reason.
 */
export function parseParamValue(name: string, text: string, type: string): ParamValue {
  const raw = text.trim();
  switch (type) {
    case 'str':
      return text;
    case 'int': {
      if (!/^[-+]?\d+$/.test(raw)) {
        throw new ParamError(`${name} must be an integer, got "${text}"`);
      }
      return Number.parseInt(raw, 10);
    }
    case 'float': {
      const value = Number(raw);
      if (raw === '' || !Number.isFinite(value)) {
        throw new ParamError(`${name} must be a number, got "${text}"`);
      }
      return value;
    }
    case 'bool': {
      const lower = raw.toLowerCase();
      if (lower === 'true' || lower === '1' || lower === 'yes') {
        return true;
      }
      if (lower === 'false' || lower === '0' || lower === 'no') {
        return false;
      }
      throw new ParamError(`${name} must be true or false, got "${text}"`);
    }
    case 'NoneType':
      return raw === '' || raw === 'None' || raw === 'null' ? null : guessValue(raw);
    default:
      try {
        return JSON.parse(raw) as ParamValue;
      } catch {
        throw new ParamError(`${name} must be JSON (${type}), got "${text}"`);
      }
  }
}

/** Only the parameters whose edited value differs from the notebook's, ready for the POST body. */
export function changedParameters(
  original: Record<string, IParameter>,
  edited: Record<string, string>
): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const [name, text] of Object.entries(edited)) {
    const param = original[name];
    if (!param) {
      continue;
    }
    const value = parseParamValue(name, text, param.type);
    if (JSON.stringify(value) !== JSON.stringify(param.value)) {
      out[name] = value;
    }
  }
  return out;
}

/**
 * Parses the simple assignments of a papermill parameters cell (`name = literal  # comment`),
 * for a notebook whose cell is not saved yet. Lines that are not simple literals are skipped.
 */
export function parseParametersCell(source: string): Record<string, IParameter> {
  const out: Record<string, IParameter> = {};
  for (const line of source.split('\n')) {
    const match = /^([A-Za-z_]\w*)\s*(?::\s*[\w.[\], ]+)?=\s*(.+?)\s*$/.exec(stripComment(line));
    if (!match) {
      continue;
    }
    const parsed = pythonLiteral(match[2]);
    if (parsed !== undefined) {
      out[match[1]] = parsed;
    }
  }
  return out;
}

function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === '\\') {
        i++;
      } else if (c === quote) {
        quote = null;
      }
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#') {
      return line.slice(0, i);
    }
  }
  return line;
}

function pythonLiteral(text: string): IParameter | undefined {
  if (/^[-+]?\d+$/.test(text)) {
    return { value: Number.parseInt(text, 10), type: 'int' };
  }
  if (/^[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)$/.test(text)) {
    return { value: Number(text), type: 'float' };
  }
  if (text === 'True' || text === 'False') {
    return { value: text === 'True', type: 'bool' };
  }
  if (text === 'None') {
    return { value: null, type: 'NoneType' };
  }
  const str = /^(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')$/.exec(text);
  if (str) {
    const body = str[1] ?? str[2];
    return { value: body.replace(/\\(.)/g, '$1'), type: 'str' };
  }
  return undefined;
}

function guessValue(raw: string): ParamValue {
  try {
    return JSON.parse(raw) as ParamValue;
  } catch {
    return raw;
  }
}
