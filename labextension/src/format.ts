/**
 * Pure formatting of run fields for the table cells. Missing values render as an en dash.
 */

export const MISSING = '–';

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** 412 -> "412 ms", 1234 -> "1.23 s", 75000 -> "1m 15s". */
export function formatLatency(ms: number | null | undefined): string {
  if (!isNumber(ms) || ms < 0) {
    return MISSING;
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  if (ms < 60_000) {
    return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  }
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes}m ${seconds}s`;
}

/** 96 -> "96", 1234 -> "1.2k", 2500000 -> "2.5M". */
export function formatTokens(tokens: number | null | undefined): string {
  if (!isNumber(tokens) || tokens < 0) {
    return MISSING;
  }
  if (tokens < 1000) {
    return String(Math.round(tokens));
  }
  if (tokens < 1_000_000) {
    return `${trimZero((tokens / 1000).toFixed(1))}k`;
  }
  return `${trimZero((tokens / 1_000_000).toFixed(1))}M`;
}

/** 0 -> "$0", 0.00002 -> "$0.00002", 0.0123 -> "$0.0123", 12.5 -> "$12.50". */
export function formatCost(usd: number | null | undefined): string {
  if (!isNumber(usd) || usd < 0) {
    return MISSING;
  }
  if (usd === 0) {
    return '$0';
  }
  if (usd >= 1) {
    return `$${usd.toFixed(2)}`;
  }
  // Three significant digits for small amounts, without trailing zeros.
  return `$${trimZero(usd.toPrecision(3), true)}`;
}

/** A score object {name, value} -> "contains 0.85"; null -> dash. */
export function formatScore(
  score: { name: string; value: number | null } | null | undefined
): string {
  if (!score || !isNumber(score.value)) {
    return MISSING;
  }
  const value = Number.isInteger(score.value)
    ? String(score.value)
    : trimZero(score.value.toFixed(3));
  return score.name ? `${score.name} ${value}` : value;
}

/** A metric value of any size, for the metrics tables. */
export function formatMetric(value: number | null | undefined): string {
  if (!isNumber(value)) {
    return MISSING;
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 0.001 || abs >= 1e9)) {
    return value.toExponential(2);
  }
  return trimZero(value.toFixed(abs < 1 ? 4 : 2));
}

/** Start time in ms -> "just now", "5 min ago", "3 h ago", else a local date and time. */
export function formatAge(startMs: number | null | undefined, nowMs: number = Date.now()): string {
  if (!isNumber(startMs)) {
    return MISSING;
  }
  const seconds = Math.max(0, Math.round((nowMs - startMs) / 1000));
  if (seconds < 45) {
    return 'just now';
  }
  if (seconds < 3600) {
    return `${Math.max(1, Math.round(seconds / 60))} min ago`;
  }
  if (seconds < 86_400) {
    return `${Math.round(seconds / 3600)} h ago`;
  }
  return new Date(startMs).toLocaleString();
}

/** Cuts a long string for a one-line cell; the full text goes into the title attribute. */
export function truncate(text: string | null | undefined, max = 80): string {
  const value = (text ?? '').replace(/\s+/g, ' ').trim();
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

function trimZero(text: string, keepExponent = false): string {
  if (keepExponent && /e/i.test(text)) {
    return Number(text).toString();
  }
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

/** The run fields a row or a detail shows, in order; what a run does not have is left out, not dashed. */
export interface IRunFactsInput {
  kind?: string | null;
  model?: string | null;
  prompt?: string | null;
  latency_ms?: number | null;
  total_tokens?: number | null;
  cost_usd?: number | null;
  job_metrics?: Record<string, number | null> | null;
  duration_s?: number | null;
  variants?: number | null;
  rows?: number | null;
}

/**
 * One call: model · prompt · latency · tokens · cost. A job run: its notebook's metrics and duration; a
 * comparison: its variant and row counts; a batch: its rows too. Nothing known: a single dash.
 */
export function runFacts(run: IRunFactsInput, tokensWord = 'tok'): string[] {
  const facts: string[] = [];
  const add = (text: string | null | undefined) => {
    if (text && text !== MISSING) {
      facts.push(text);
    }
  };
  add(run.model);
  add(run.prompt);
  if (run.kind === 'compare' && isNumber(run.variants)) {
    add(`${run.variants} variant${run.variants === 1 ? '' : 's'}`);
  }
  if ((run.kind === 'compare' || run.kind === 'batch') && isNumber(run.rows)) {
    add(`${run.rows} row${run.rows === 1 ? '' : 's'}`);
  }
  for (const [name, value] of Object.entries(run.job_metrics ?? {})) {
    if (isNumber(value)) {
      add(`${name} ${formatMetric(value)}`);
    }
  }
  add(formatLatency(run.latency_ms));
  if (isNumber(run.total_tokens) && run.total_tokens >= 0) {
    add(`${formatTokens(run.total_tokens)} ${tokensWord}`);
  }
  add(formatCost(run.cost_usd));
  if (run.kind === 'job' && isNumber(run.duration_s)) {
    add(`ran ${formatLatency(run.duration_s * 1000)}`);
  }
  return facts.length ? facts : [MISSING];
}

/**
 * A long path or URI cut in the middle so its start (scheme) and end (file name) stay readable:
 * "sqlite:////home/ada/projects/demo/.llmops/mlflow.db" -> "sqlite:////home/…/demo/.llmops/mlflow.db".
 */
export function shortenPath(text: string, max = 48): string {
  if (text.length <= max) {
    return text;
  }
  const tail = Math.ceil((max - 1) * 0.65);
  const head = max - 1 - tail;
  let end = text.slice(text.length - tail);
  const slash = end.indexOf('/');
  if (slash > 0 && slash < end.length - 8) {
    end = end.slice(slash); // start the tail at a folder boundary
  }
  return `${text.slice(0, head)}…${end}`;
}
