/**
 * Typed calls of the REST contract (docs/server-api.md).
 */
import { DiffOp } from './diff';
import { IParameter, ParamValue } from './params';
import { apiPath, buildQuery } from './query';
import { apiUrl, requestAPI, requestText } from './request';

export interface IContext {
  project_root: string;
  tracking_uri: string;
  experiment: string;
  experiment_id: string | null;
  mlflow_ui: { running: boolean; url: string | null; ready?: boolean };
}

export interface IRunRow {
  run_id: string;
  name: string;
  kind: string;
  status: string;
  start_time: number;
  model: string | null;
  prompt: string | null;
  latency_ms: number | null;
  total_tokens: number | null;
  cost_usd: number | null;
  score: { name: string; value: number | null } | null;
  notebook: string | null;
  error: string | null;
  /** A job run: the job's name, up to three of the metrics its notebook recorded, its duration. */
  job?: string | null;
  job_metrics?: Record<string, number | null> | null;
  duration_s?: number | null;
  /** A comparison: how many variants; a comparison or batch: how many data rows. */
  variants?: number | null;
  rows?: number | null;
  /** A conversation turn: the conversation's name and the turn's number (from 1). */
  conversation_name?: string | null;
  turn?: number | null;
}

/** One run of a conversation (a turn; a failed turn and its retry share a number). Excerpts as stored: masked. */
export interface IConversationTurn {
  turn: number;
  run_id: string;
  name: string;
  status: string;
  start_time: number;
  interrupted: boolean;
  user: string | null;
  assistant: string | null;
  error: string | null;
}

/** A conversation's turns in order; `current`: the run whose detail is shown (null from `conversations/<id>`). */
export interface IConversation {
  id: string;
  name: string | null;
  parent: { id: string; turns: number } | null;
  turns: IConversationTurn[];
  truncated: boolean;
  current: string | null;
}

/** The first rows of a batch run's results table (cells as text). */
export interface IResultRows {
  columns: string[];
  score_columns: string[];
  rows: string[][];
  total: number;
  truncated: boolean;
}

export interface ISpan {
  name: string;
  span_type: string;
  start_ms: number;
  end_ms: number;
  status: string;
  attributes: Record<string, unknown>;
}

export interface IRunDetail extends IRunRow {
  experiment_id?: string | null;
  end_time?: number | null;
  params: Record<string, string>;
  metrics: Record<string, number>;
  tags: Record<string, string>;
  prompt_text: string | null;
  output_text: string | null;
  spans: ISpan[];
  results?: IResultRows | null;
  conversation?: IConversation | null;
}

export interface IRunsPage {
  experiment: string;
  experiment_id: string | null;
  runs: IRunRow[];
  next_page_token: string | null;
}

export interface ICompare {
  runs: IRunDetail[];
  baseline: string;
  diffs: Record<string, DiffOp[]>;
  metrics: string[];
}

export interface IPromptRow {
  name: string;
  latest: number;
  versions: number[];
  aliases: Record<string, number>;
  model: string | null;
  updated_ms: number | null;
}

export interface IPromptVersion {
  version: number;
  template: string;
  aliases: string[];
  model: string | null;
  params: Record<string, unknown>;
  commit_message: string | null;
  created_ms: number | null;
}

export interface IJob {
  name: string;
  notebook: string;
  schedule: string | null;
  schedule_text: string | null;
  next_run: string | null;
  last_status: string | null;
  last_run_id: string | null;
  last_started: string | null;
  last_metrics: Record<string, number> | null;
  score: [string, number] | null;
  timezone?: string | null;
  running?: boolean;
  last_execution?: IExecution | null;
}

/** One execution of a job (its history). */
export interface IExecution {
  id: number;
  status: string;
  trigger: string;
  started_at: string | null;
  ended_at: string | null;
  duration_s: number | null;
  metrics: Record<string, number>;
  run_id: string | null;
  error: string | null;
  /** Whether the HTML report exists. */
  report: boolean;
  /** The executed notebook relative to the server root (null: outside it), and whether JupyterLab opens it. */
  output_path: string | null;
  output_openable: boolean;
  has_output: boolean;
}

export interface IPreview {
  notebook: string;
  parameters: Record<string, IParameter>;
  parameters_cell?: boolean;
  timezone?: string;
  schedule_text: string | null;
  next_runs: string[];
}

/** `notebook` is the active notebook's path relative to the server root, or null. */
export const api = {
  context: (notebook: string | null) =>
    requestAPI<IContext>(`context${buildQuery({ notebook })}`),

  runs: (notebook: string | null, pageToken: string | null, maxResults = 25) =>
    requestAPI<IRunsPage>(
      `runs${buildQuery({ notebook, max_results: maxResults, page_token: pageToken })}`
    ),

  run: (runId: string, notebook: string | null) =>
    requestAPI<IRunDetail>(`${apiPath('runs', runId)}${buildQuery({ notebook })}`),

  compare: (runIds: string[], notebook: string | null) =>
    requestAPI<ICompare>(`compare${buildQuery({ run_ids: runIds, notebook })}`),

  prompts: (notebook: string | null) =>
    requestAPI<{ prompts: IPromptRow[] }>(`prompts${buildQuery({ notebook })}`),

  prompt: (name: string, notebook: string | null) =>
    requestAPI<{ name: string; versions: IPromptVersion[] }>(
      `${apiPath('prompts', name)}${buildQuery({ notebook })}`
    ),

  promptDiff: (name: string, a: string, b: string, notebook: string | null) =>
    requestAPI<{ a: string; b: string; diff: string }>(
      `${apiPath('prompts', name, 'diff')}${buildQuery({ a, b, notebook })}`
    ),

  setAlias: (name: string, alias: string, version: number, notebook: string | null) =>
    requestAPI<{ version: number; aliases: string[] }>(
      `${apiPath('prompts', name, 'alias')}${buildQuery({ notebook })}`,
      { method: 'PUT', body: { alias, version } }
    ),

  jobs: (notebook: string | null) => requestAPI<{ jobs: IJob[] }>(`jobs${buildQuery({ notebook })}`),

  runJob: (name: string, notebook: string | null) =>
    requestAPI<{ name: string; started: boolean }>(`${apiPath('jobs', name, 'run')}${buildQuery({ notebook })}`, {
      method: 'POST'
    }),

  jobHistory: (name: string, notebook: string | null, limit = 10) =>
    requestAPI<{ name: string; executions: IExecution[] }>(
      `${apiPath('jobs', name, 'history')}${buildQuery({ notebook, limit })}`
    ),

  jobReport: (name: string, execution: number, notebook: string | null) =>
    requestText(`${apiPath('jobs', name, 'executions', String(execution), 'report')}${buildQuery({ notebook })}`),

  /** The executed notebook as a download (for a link). */
  jobNotebookUrl: (name: string, execution: number, notebook: string | null) =>
    apiUrl(`${apiPath('jobs', name, 'executions', String(execution), 'notebook')}${buildQuery({ notebook })}`),

  preview: (notebook: string, schedule: string | null, timezone: string | null) =>
    requestAPI<IPreview>(`jobs/preview${buildQuery({ notebook, schedule, timezone })}`),

  createJob: (body: {
    notebook: string;
    name: string;
    schedule?: string;
    timezone?: string;
    parameters?: Record<string, ParamValue>;
  }) => requestAPI<IJob>('jobs', { method: 'POST', body }),

  startMlflowUi: (notebook: string | null) =>
    requestAPI<{ running: boolean; url: string; ready?: boolean }>('mlflow-ui', {
      method: 'POST',
      body: notebook ? { notebook } : {}
    })
};
