"""IPython magics: ``%%llm`` (a cell is a prompt) and ``%llm`` (commands). Parsing and display only;
the work is done by the core API. User errors become ``UsageError``: one line, no traceback.
"""
from __future__ import annotations

import argparse
import functools
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from llmops_lab.exceptions import ConfigError, LlmopsError

FORMATS = ("markdown", "text", "json", "code")
UNATTENDED_FOOTER_WAIT_S = 30.0  # in a papermill run, how long a cell waits for its run id (see show)
HELP = """\
%%llm [PROVIDER:MODEL] [options]      the cell body is a Jinja2 prompt template over notebook variables
  --name NAME            prompt name in the MLflow registry (default: prompt-<hash>)
  --temperature T  --max-tokens N  --top-p P  --seed S  --stop TEXT
  --system TEXT          system message
  --out VAR              store the result object in VAR (also in _)
  --format F             markdown (default) | text | json | code (code goes into a new cell)
  --logprobs [--top-logprobs N]   token probabilities: the answer shaded by probability, the top N
                         alternatives (0-20, default 5) on hover; result.logprobs_frame()
  --dataset DF           run over every row of a DataFrame variable (or a .csv/.jsonl path): a batch
    --scorer SPEC        exact:COL[:case] (ignores case unless :case) contains:COL regex:PAT json
                         numeric:COL[:tol] latency_under:MS cost_under:USD judge:"rubric" (repeatable)
    --concurrency N      parallel requests (default 8)   --no-cache / --refresh   --judge-model M
    --trace-sample N     rows traced in MLflow (default 20)
%llm help                this text
%llm models              providers, keys and endpoints configured, local model status
%llm config [k=v ...]    show or change settings (model, temperature, max_tokens, tracking_uri, experiment …)
%llm experiment [NAME]   show or set the MLflow experiment (default: one per notebook)
%llm runs [N]            recent runs of this notebook's experiment, as a DataFrame
%llm flush               write pending records to MLflow now
%llm stats [--since 7d] [--by model|prompt|day|notebook] [--experiment NAME] [--plot]
                         calls, errors, latency p50/p95/p99, tokens, cost, scores, drift, from MLflow
%llm compare P1 P2 … --dataset DF [--models a,b] [--scorer S] [--baseline 0] [--logprobs]
                         prompt variants (registry name@version|alias or inline) side by side: a widget
%llm prompts [NAME] [--diff A B]   the prompt registry: versions, aliases, model config; diff two versions
%llm last                the last call in full: messages, parameters, raw response, retries, stage timings
%llm trace RUN_ID        a logged run read back from MLflow, with its trace spans
%llm redact-preview TEXT|VAR   what redaction would mask in a text (or %%llm redact-preview: the rendered cell)
budgets: --max-cost USD (per call or batch; settings max_cost, max_cost_day) refuse before any request;
         --force skips the check"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit the kernel
        raise ConfigError(f"%%llm: {message} (see %llm help)")


@functools.lru_cache(maxsize=1)
def _cell_parser() -> argparse.ArgumentParser:
    """Built once: building an ArgumentParser costs about a millisecond per cell."""
    parser = _Parser(prog="%%llm", add_help=False, allow_abbrev=False)
    parser.add_argument("model", nargs="?")
    parser.add_argument("--name", "-n")
    parser.add_argument("--temperature", "-t")
    parser.add_argument("--max-tokens", dest="max_tokens")
    parser.add_argument("--top-p", dest="top_p")
    parser.add_argument("--seed")
    parser.add_argument("--stop")
    parser.add_argument("--system")
    parser.add_argument("--out", "-o")
    parser.add_argument("--format", "-f", default="markdown")
    parser.add_argument("--logprobs", action="store_true")
    parser.add_argument("--top-logprobs", dest="top_logprobs", type=_whole_number)
    # batch evaluation
    parser.add_argument("--dataset", "-d")
    parser.add_argument("--scorer", "-s", action="append", default=[])
    parser.add_argument("--concurrency", "-c", type=_whole_number, default=8)
    parser.add_argument("--no-cache", dest="cache", action="store_false")
    parser.add_argument("--refresh", action="store_true")
    parser.add_argument("--judge-model")
    parser.add_argument("--trace-sample", type=_whole_number, default=20)
    # budgets
    parser.add_argument("--max-cost", type=_amount)
    parser.add_argument("--force", action="store_true")
    return parser


def _amount(text: str) -> float:
    try:
        return float(text.lstrip("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of USD") from None


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def parse_cell_line(line: str) -> argparse.Namespace:
    """Options of a ``%%llm`` line. Unknown options are named without their values (which may be keys)."""
    _refuse_secrets(line, "the %%llm line")
    try:
        tokens = shlex.split(line)
    except ValueError as err:
        raise ConfigError(f"%%llm: cannot parse options: {err}") from None
    args, unknown = _cell_parser().parse_known_args(tokens)
    if unknown:
        options = [t.split("=")[0] for t in unknown if t.startswith("-")] or ["an extra positional argument"]
        raise ConfigError(f"%%llm: unknown option {', '.join(options)} (see %llm help)")
    if args.format not in FORMATS:
        raise ConfigError(f"--format {args.format!r} is not one of {', '.join(FORMATS)}")
    if args.out is not None and not args.out.isidentifier():
        raise ConfigError(f"--out {args.out!r} is not a Python variable name")
    if args.dataset is None and (args.scorer or args.refresh or args.judge_model):
        raise ConfigError("--scorer, --refresh and --judge-model go with --dataset (a batch over rows)")
    if args.model is not None and ":" not in args.model:
        raise ConfigError(f"{args.model!r} is not provider:model (e.g. openai:gpt-4o-mini); options start with --")
    return args


def _refuse_secrets(text: str, where: str) -> None:
    """A key or password typed into a magic would be saved in the notebook: refuse it, never echo it."""
    from llmops_lab.trust.redaction import find_secrets

    found = find_secrets(text)
    if found:
        raise ConfigError(f"{where} contains what looks like a secret ({', '.join(found)}): refused and not stored. "
                          "Keys are read from the environment (export OPENAI_API_KEY, or the endpoint's api_key_env, "
                          "in the shell that starts Jupyter); remove it from the cell")


class Footer:
    """The one-line footer under an answer; re-rendered when the run id arrives."""

    def __init__(self, result: Any):
        self.text = result.footer()

    def _repr_html_(self) -> str:
        import html

        return f'<div style="color:#777;font-size:0.85em">{html.escape(self.text)}</div>'

    def __repr__(self) -> str:
        return self.text


def display_path(text: str, project_root: Any) -> str:
    """Paths as a notebook should keep them: the project root as ``<project>`` (``<project>/.llmops/mlflow.db``),
    the home folder as ``~``. A saved notebook then shows no machine's folders, and says the same everywhere."""
    import os
    from pathlib import Path

    root = str(Path(project_root).resolve())
    home = os.path.expanduser("~")
    text = text.replace(root, "<project>")
    if home not in ("", "/") and home != root:
        text = text.replace(home + os.sep, "~" + os.sep)
    return text


def dataset_value(name: str, user_ns: Any) -> Any:
    """``--dataset NAME``: the notebook variable ``NAME``, else a path; a name that is neither is a one-line
    error naming the variables it may have meant (``--dataset dff`` -> no variable dff; did you mean df?)."""
    import difflib
    import os

    if name in user_ns:
        return user_ns[name]
    if name.isidentifier() and not os.path.exists(name):
        import pandas as pd

        frames = sorted(k for k, v in user_ns.items() if not k.startswith("_") and k not in ("In", "Out")
                        and isinstance(v, (pd.DataFrame, list)))
        close = difflib.get_close_matches(name, frames, n=3)
        hint = (f"did you mean {' or '.join(close)}?" if close else
                f"DataFrames here: {', '.join(frames[:8])}" if frames else "define a DataFrame first")
        raise ConfigError(f"--dataset {name}: no variable {name!r} in the notebook and no file of that name ({hint})")
    return name


def for_display(text: Any) -> Any:
    """What a notebook may keep of a text: secrets masked (the saved .ipynb is storage too); in a job run
    (``LLMOPS_JOB`` set: the output notebook becomes an artifact) the whole log policy applies. The result
    object keeps the real answer."""
    from llmops_lab.trust.redaction import mask_for_display

    return mask_for_display(text) if isinstance(text, str) else text


def show(result: Any, fmt: str, shell: Any) -> None:
    """Display the answer in ``fmt`` and a live footer."""
    import json
    import os

    from IPython.display import JSON, Markdown, display

    from llmops_lab.core.results import strip_fences

    text = for_display(result.text)
    shaded = result.logprobs_requested
    if shaded:  # the answer shaded by token probability replaces the markdown/text view
        from IPython.display import HTML

        from llmops_lab.core.explain import result_html

        display(HTML(result_html(result.text, result.tokens)))  # masked for display inside
    if fmt == "markdown":
        if not shaded:
            display(Markdown(text))
    elif fmt == "json":
        try:
            data = result.data if text == result.text else json.loads(strip_fences(text))
        except json.JSONDecodeError:
            data = None
        if data is None:
            display(Markdown(text))
            print("(the answer is not valid JSON; .data is None)")
        else:
            display(JSON(data, expanded=True))
    elif fmt == "code":
        code = strip_fences(text)
        display(Markdown(f"```\n{code}\n```"))
        shell.set_next_input(code, replace=False)
    elif not shaded:
        print(text)
    if result._ticket is not None and os.environ.get("LLMOPS_NOTEBOOK"):
        # A papermill run (execute_notebook, jobs, `llmops-lab demo`): nobody watches the cell and the saved
        # notebook is what counts, while an update from the writer after the cell ends never reaches the file.
        # Wait (bounded) for the run id so the footer is saved final, not "logging…".
        result._ticket.wait(UNATTENDED_FOOTER_WAIT_S)
    handle = display(Footer(result), display_id=True)
    if handle is not None and result._ticket is not None:
        result._ticket.on_change(lambda _ticket: handle.update(Footer(result)))


@magics_class
class LlmMagics(Magics):
    """``%llm`` / ``%%llm``."""

    @no_var_expand
    @line_cell_magic
    def llm(self, line: str, cell: str | None = None) -> Any:
        try:
            if cell is not None and line.split()[:1] == ["redact-preview"]:
                return self._redact_preview_cell(line, cell)
            return self._line(line) if cell is None else self._cell(line, cell)
        except LlmopsError as err:
            from llmops_lab.trust.redaction import mask_secrets

            raise UsageError(mask_secrets(str(err))) from None

    # -- %%llm ------------------------------------------------------------------------------------
    def _cell(self, line: str, cell: str) -> None:
        from llmops_lab.core.call import run

        args = parse_cell_line(line)
        params = {"temperature": args.temperature, "max_tokens": args.max_tokens, "top_p": args.top_p,
                  "seed": args.seed, "stop": args.stop}
        if args.dataset is not None:
            return self._batch(args, cell, params)
        result = run(cell, self.shell.user_ns, model=args.model, name=args.name, system=args.system,
                     max_cost=args.max_cost, force=args.force, logprobs=args.logprobs,
                     top_logprobs=args.top_logprobs, **params)
        if args.out:
            self.shell.user_ns[args.out] = result
        self.shell.user_ns["_"] = result
        show(result, args.format, self.shell)

    def _batch(self, args: argparse.Namespace, cell: str, params: dict[str, Any]) -> None:
        from IPython.display import display

        from llmops_lab.evaluation.batch import TOKENS_COLUMN, batch

        data = dataset_value(args.dataset, self.shell.user_ns)  # a variable, else a .csv/.jsonl path
        results = batch(cell, data, model=args.model, name=args.name, system=args.system, scorers=args.scorer,
                        concurrency=args.concurrency, cache=args.cache, refresh=args.refresh,
                        variables=self.shell.user_ns, judge_model=args.judge_model,
                        trace_sample=args.trace_sample, dataset_name=args.dataset, max_cost=args.max_cost,
                        force=args.force, logprobs=args.logprobs, top_logprobs=args.top_logprobs, **params)
        if args.out:
            self.shell.user_ns[args.out] = results
        self.shell.user_ns["_"] = results
        shown = results.copy()  # the saved notebook gets masked text; the variable keeps the real answers
        if TOKENS_COLUMN in shown.columns:  # per-row token lists: not a table's job (explain.shade_html)
            shown = shown.drop(columns=TOKENS_COLUMN)
        for column in shown.columns[shown.dtypes == object]:
            shown[column] = shown[column].map(for_display)
        display(shown)

    # -- %llm ---------------------------------------------------------------------------------------
    def _line(self, line: str) -> Any:
        command, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        handler = {"": self._help, "help": self._help, "models": self._models, "config": self._config,
                   "experiment": self._experiment, "runs": self._runs, "flush": self._flush,
                   "last": self._last, "trace": self._trace, "redact-preview": self._redact_preview,
                   "stats": self._stats, "compare": self._compare, "prompts": self._prompts}.get(command)
        if handler is None:
            raise ConfigError(f"%llm: unknown command {command!r}: use help, models, config, experiment, runs, "
                              "flush, last, trace, stats, compare, prompts or redact-preview (a prompt goes in a %%llm cell)")
        return handler(rest)

    def _help(self, _rest: str) -> None:
        print(HELP)

    def _models(self, _rest: str) -> Any:
        import pandas as pd

        from llmops_lab.config import get_settings
        from llmops_lab.providers import describe_providers

        settings = get_settings()
        print(f"default model: {settings.model}")
        return pd.DataFrame(describe_providers(settings))

    def _config(self, rest: str) -> None:
        from llmops_lab.config import configure, get_settings

        if rest:
            _refuse_secrets(rest, "%llm config")
            values = {}
            for token in shlex.split(rest):
                key, sep, value = token.partition("=")
                if not sep:
                    raise ConfigError(f"%llm config: {token!r} is not key=value (e.g. %llm config temperature=0)")
                values[key.strip().replace("-", "_")] = value
            configure(**values)
        settings = get_settings()
        for key, value in settings.public_view().items():
            if key in ("tracking_uri", "project_root"):
                value = display_path(str(value), settings.project_root)
            print(f"{key:>12} = {value}")

    def _experiment(self, rest: str) -> None:
        from llmops_lab.config import configure, get_settings
        from llmops_lab.tracking import context

        if rest:
            configure(experiment=rest)
        print(context.experiment_name(get_settings(), context.notebook_path()))

    def _runs(self, rest: str) -> Any:
        from llmops_lab.tracking import recent_runs

        try:
            limit = int(rest) if rest else 20
        except ValueError:
            raise ConfigError(f"%llm runs: {rest!r} is not a number of runs") from None
        return recent_runs(limit)

    def _compare(self, rest: str) -> Any:
        from llmops_lab.evaluation.compare import compare_from_magic_args

        parser = _Parser(prog="%llm compare", add_help=False, allow_abbrev=False)
        parser.add_argument("prompts", nargs="+")
        parser.add_argument("--models")
        parser.add_argument("--dataset", "-d", required=True)
        parser.add_argument("--scorer", "-s", action="append", default=[])
        parser.add_argument("--baseline", default="0")
        parser.add_argument("--name", "-n")
        parser.add_argument("--concurrency", "-c", type=_whole_number, default=8)
        parser.add_argument("--temperature", "-t")
        parser.add_argument("--max-tokens", dest="max_tokens")
        parser.add_argument("--logprobs", action="store_true")
        parser.add_argument("--top-logprobs", dest="top_logprobs", type=_whole_number)
        args, unknown = parser.parse_known_args(shlex.split(rest))
        if unknown:
            raise ConfigError(f"%llm compare: unknown option {' '.join(unknown)} (see %llm help)")
        baseline: int | str = int(args.baseline) if args.baseline.isdigit() else args.baseline
        params: dict[str, Any] = {k: v for k, v in (("temperature", args.temperature),
                                                    ("max_tokens", args.max_tokens)) if v}
        if args.logprobs or args.top_logprobs is not None:  # validated (one-line errors) by compare()
            params.update(logprobs=args.logprobs, top_logprobs=args.top_logprobs)
        return compare_from_magic_args(args.prompts, models=args.models,
                                       dataset=dataset_value(args.dataset, self.shell.user_ns), scorers=args.scorer,
                                       baseline=baseline, name=args.name, concurrency=args.concurrency,
                                       user_ns=self.shell.user_ns, **params)

    def _prompts(self, rest: str) -> Any:
        from llmops_lab.tracking.registry import prompts_from_magic_args

        parser = _Parser(prog="%llm prompts", add_help=False, allow_abbrev=False)
        parser.add_argument("name", nargs="?")
        parser.add_argument("--diff", nargs=2)
        args, unknown = parser.parse_known_args(shlex.split(rest))
        if unknown:
            raise ConfigError(f"%llm prompts: unknown option {' '.join(unknown)}: use %llm prompts [NAME] [--diff A B]")
        return prompts_from_magic_args(args.name, diff=args.diff)

    def _stats(self, rest: str) -> Any:
        from llmops_lab.analysis.monitoring import stats

        parser = _Parser(prog="%llm stats", add_help=False, allow_abbrev=False)
        parser.add_argument("--since", default="7d")
        parser.add_argument("--by")
        parser.add_argument("--experiment")
        parser.add_argument("--plot", action="store_true")
        args, unknown = parser.parse_known_args(shlex.split(rest))
        if unknown:
            raise ConfigError(f"%llm stats: unknown option {' '.join(unknown)}: use --since, --by, --experiment, "
                              "--plot")
        return stats(since=args.since, by=args.by, experiment=args.experiment, plot=args.plot)

    def _last(self, _rest: str) -> Any:
        from llmops_lab.core.debug import last

        return last()

    def _trace(self, rest: str) -> Any:
        from llmops_lab.core.debug import describe_run

        if not rest:
            raise ConfigError("%llm trace needs a run id: %llm trace RUN_ID (ids are in %llm runs and footers)")
        return describe_run(rest.split()[0])

    def _redact_preview(self, rest: str) -> Any:
        from llmops_lab.trust.redaction import preview

        if not rest:
            raise ConfigError("%llm redact-preview needs a text or a variable name: %llm redact-preview my_text "
                              "(or a %%llm redact-preview cell, rendered like a prompt)")
        value = self.shell.user_ns.get(rest) if rest.isidentifier() else None
        return preview(str(value) if value is not None else rest)

    def _redact_preview_cell(self, line: str, cell: str) -> Any:
        """``%%llm redact-preview``: the cell rendered as a prompt (notebook variables), then previewed."""
        from llmops_lab.core.templates import PromptTemplate
        from llmops_lab.trust.redaction import preview

        if line.split()[1:]:
            raise ConfigError("%%llm redact-preview takes no options: put the text (a template) in the cell body")
        return preview(PromptTemplate(cell).render(self.shell.user_ns))

    def _flush(self, _rest: str) -> None:
        from llmops_lab.tracking import flush, get_tracker

        left = flush()
        reason = get_tracker().last_error if left else None
        print("all records written to MLflow" if not left else
              f"{left} record(s) still queued in the spool ({reason or 'MLflow unreachable?'}); they are retried")


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext llmops_lab``: register the magics; replay an earlier kernel's spool in the background."""
    shell.register_magics(LlmMagics)
    from llmops_lab.tracking import replay_if_needed

    replay_if_needed()
