"""The ``%%llm`` / ``%llm`` magics: each subcommand parses (:mod:`.parsing`), calls the core API and displays
(:mod:`.display`). User errors become ``UsageError``: one line, no traceback.
"""
from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from llmops_lab.exceptions import ConfigError, LlmopsError, SchemaError, StreamInterrupted
from llmops_lab.magics.display import LiveAnswer, display_path, show, show_frame
from llmops_lab.magics.parsing import (chat_parser, compare_parser, dataset_value, optimize_parser, parse_cell_line, probe_parser,
                                       prompts_parser, refuse_secrets, schema_value, stats_parser, streams)

HELP = """\
%%llm [PROVIDER:MODEL] [options]      the cell body is a Jinja2 prompt template over notebook variables
  --name NAME            prompt name in the MLflow registry (default: prompt-<hash>)
  --temperature T  --max-tokens N  --top-p P  --seed S  --stop TEXT
  --system TEXT          system message
  --chat NAME            continue conversation NAME: the request carries its earlier turns (%llm chat)
  --out VAR              store the result object in VAR (also in _)
  --format F             markdown (default) | text | json | code (code goes into a new cell)
  --schema SPEC          structured output: a pydantic model class or JSON-schema dict variable, or a .json
                         path; asked for natively, validated (one retry shown the error); VAR.data is the
                         object; shown as JSON, never streamed; with --dataset: schema_valid column + field:NAME
  --no-stream / --stream   show the answer only when complete / as it arrives (the default for markdown
                         and text; %llm config stream=false changes it; json, code, --logprobs and
                         --dataset never stream)
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
%llm compare P1 P2 … --dataset DF [--models a,b] [--scorer S] [--baseline 0] [--logprobs] [--system S]
                         [--schema SPEC]
                         prompt variants (registry name@version|alias or inline) side by side: a widget
%llm probe PROMPT --dataset DF [--swaps gender,names] --scorer S [--model M] [--out VAR]
                         counterfactual probe: each row as is and with names/pronouns swapped (inputs and
                         references alike); flip rate and McNemar p per attribute x scorer; p.examples()
%llm optimize PROMPT --dataset DF --scorer S [--proposer M] [--candidates 8] [--rounds 3] [--label COL] [--out VAR]
                         prompt search on train/validation rows; the best is tested against the original on
                         held-out test rows (paired test); o.report(), o.promote() only when significant
%llm chat [NAME] [--reset | --fork NEW | --resume]   conversations of this kernel: the list, NAME's
                         transcript; clear it, copy it as NEW, or rebuild it from MLflow after a restart
%llm prompts [NAME] [--diff A B]   the prompt registry: versions, aliases, model config; diff two versions
%llm last                the last call in full: messages, parameters, raw response, retries, stage timings
%llm trace RUN_ID        a logged run read back from MLflow, with its trace spans
%llm redact-preview TEXT|VAR   what redaction would mask in a text (or %%llm redact-preview: the rendered cell)
budgets: --max-cost USD (per call or batch; settings max_cost, max_cost_day) refuse before any request;
         --force skips the check"""


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
        from llmops_lab.config import get_settings
        from llmops_lab.core.call import run

        args = parse_cell_line(line)
        params = {"temperature": args.temperature, "max_tokens": args.max_tokens, "top_p": args.top_p,
                  "seed": args.seed, "stop": args.stop}
        schema = schema_value(args.schema, self.shell.user_ns) if args.schema is not None else None
        if args.dataset is not None:
            return self._batch(args, cell, params, schema)
        live = LiveAnswer(args.format) if streams(args, get_settings().stream) else None
        stopped = None
        try:
            if args.chat is not None:
                result = self._chat_turn(args, cell, params, live, schema)
            else:
                result = run(cell, self.shell.user_ns, model=args.model, name=args.name, system=args.system,
                             max_cost=args.max_cost, force=args.force, logprobs=args.logprobs,
                             top_logprobs=args.top_logprobs, on_text=live, schema=schema, **params)
        except StreamInterrupted as err:  # logged as interrupted: show what arrived, then stop the cell
            result, stopped = err.result, err
        except SchemaError as err:  # logged FAILED with the raw answer; `_` keeps it for a look (.text)
            self.shell.user_ns["_"] = err.result
            raise
        if args.out:
            self.shell.user_ns[args.out] = result
        self.shell.user_ns["_"] = result
        # A schema's answer is data: shown as JSON unless --format text/code was asked for.
        show(result, "json" if schema is not None and args.format == "markdown" else args.format, self.shell, live)
        if stopped is not None:
            raise stopped

    def _chat_turn(self, args: argparse.Namespace, cell: str, params: dict[str, Any],
                   live: LiveAnswer | None, schema: Any = None) -> Any:
        """``%%llm --chat NAME``: the cell is the conversation's next user message (its note, if the context
        guard dropped turns, is printed by ``send``); with ``--schema`` the answer joins it as its JSON text."""
        from llmops_lab.core.conversation import continue_or_start

        conversation = continue_or_start(args.chat, model=args.model, system=args.system)
        return conversation.send(cell, self.shell.user_ns, name=args.name, max_cost=args.max_cost, force=args.force,
                                 logprobs=args.logprobs, top_logprobs=args.top_logprobs,
                                 on_text=live, schema=schema, **params)

    def _batch(self, args: argparse.Namespace, cell: str, params: dict[str, Any], schema: Any = None) -> None:
        from llmops_lab.evaluation.batch import batch

        data = dataset_value(args.dataset, self.shell.user_ns)  # a variable, else a .csv/.jsonl path
        results = batch(cell, data, model=args.model, name=args.name, system=args.system, scorers=args.scorer,
                        concurrency=args.concurrency, cache=args.cache, refresh=args.refresh,
                        variables=self.shell.user_ns, judge_model=args.judge_model,
                        trace_sample=args.trace_sample, dataset_name=args.dataset, max_cost=args.max_cost,
                        force=args.force, logprobs=args.logprobs, top_logprobs=args.top_logprobs, schema=schema,
                        **params)
        if args.out:
            self.shell.user_ns[args.out] = results
        self.shell.user_ns["_"] = results
        show_frame(results)  # the saved notebook gets masked text; the variable keeps the real answers

    # -- %llm ---------------------------------------------------------------------------------------
    def _line(self, line: str) -> Any:
        command, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        handler = {"": self._help, "help": self._help, "models": self._models, "config": self._config,
                   "experiment": self._experiment, "runs": self._runs, "flush": self._flush,
                   "last": self._last, "trace": self._trace, "redact-preview": self._redact_preview,
                   "stats": self._stats, "compare": self._compare, "probe": self._probe, "optimize": self._optimize, "prompts": self._prompts,
                   "chat": self._chat}.get(command)
        if handler is None:
            raise ConfigError(f"%llm: unknown command {command!r}: use help, models, config, experiment, runs, "
                              "flush, last, trace, stats, compare, probe, optimize, prompts, chat or redact-preview (a prompt goes in "
                              "a %%llm cell)")
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
            refuse_secrets(rest, "%llm config")
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
        from llmops_lab.magics.adapters import compare_from_magic_args

        args, unknown = compare_parser().parse_known_args(shlex.split(rest))
        if unknown:
            raise ConfigError(f"%llm compare: unknown option {' '.join(unknown)} (see %llm help)")
        baseline: int | str = int(args.baseline) if args.baseline.isdigit() else args.baseline
        params: dict[str, Any] = {k: v for k, v in (("temperature", args.temperature),
                                                    ("max_tokens", args.max_tokens)) if v}
        if args.logprobs or args.top_logprobs is not None:  # validated (one-line errors) by compare()
            params.update(logprobs=args.logprobs, top_logprobs=args.top_logprobs)
        if args.schema is not None:
            params["schema"] = schema_value(args.schema, self.shell.user_ns)
        return compare_from_magic_args(args.prompts, models=args.models,
                                       dataset=dataset_value(args.dataset, self.shell.user_ns), scorers=args.scorer,
                                       baseline=baseline, name=args.name, concurrency=args.concurrency,
                                       system=args.system, max_cost=args.max_cost, force=args.force,
                                       user_ns=self.shell.user_ns, **params)

    def _probe(self, rest: str) -> Any:
        from llmops_lab.magics.adapters import probe_from_magic_args

        args, unknown = probe_parser().parse_known_args(shlex.split(rest))
        if unknown:
            raise ConfigError(f"%llm probe: unknown option {' '.join(unknown)} (see %llm help)")
        params: dict[str, Any] = {k: v for k, v in (("temperature", args.temperature),
                                                    ("max_tokens", args.max_tokens)) if v}
        result = probe_from_magic_args(args.prompt, dataset=dataset_value(args.dataset, self.shell.user_ns),
                                       swaps=args.swaps, scorers=args.scorer, model=args.model, name=args.name,
                                       concurrency=args.concurrency, system=args.system, max_cost=args.max_cost,
                                       force=args.force, **params)
        if args.out:
            self.shell.user_ns[args.out] = result
        return result

    def _optimize(self, rest: str) -> Any:
        from llmops_lab.magics.adapters import optimize_from_magic_args

        args, unknown = optimize_parser().parse_known_args(shlex.split(rest))
        if unknown:
            raise ConfigError(f"%llm optimize: unknown option {' '.join(unknown)} (see %llm help)")
        params: dict[str, Any] = {k: v for k, v in (("temperature", args.temperature),
                                                    ("max_tokens", args.max_tokens)) if v}
        result = optimize_from_magic_args(
            args.prompt, dataset=dataset_value(args.dataset, self.shell.user_ns), scorers=args.scorer,
            model=args.model, proposer=args.proposer, candidates=args.candidates, rounds=args.rounds, seed=args.seed,
            label=args.label, few_shot=args.few_shot, name=args.name, concurrency=args.concurrency,
            max_cost=args.max_cost, **params)
        if args.out:
            self.shell.user_ns[args.out] = result
        return result

    def _chat(self, rest: str) -> Any:
        """``%llm chat``: the kernel's conversations; ``NAME``: its transcript; ``--reset``, ``--fork NEW``,
        ``--resume`` (rebuilt from MLflow)."""
        from IPython.display import display

        from llmops_lab.core import conversation as chats
        from llmops_lab.magics.display import MarkdownText
        from llmops_lab.trust.display import for_display

        args, unknown = chat_parser().parse_known_args(shlex.split(rest))
        if unknown:
            raise ConfigError(f"%llm chat: unknown option {' '.join(unknown)}: use %llm chat [NAME] "
                              "[--reset | --fork NEW | --resume]")
        if args.name is None:
            if args.reset or args.fork or args.resume:
                raise ConfigError("%llm chat: --reset, --fork and --resume need a conversation name: "
                                  "%llm chat NAME --resume")
            return _conversation_table(chats.conversations())
        if args.resume:
            conversation = chats.resume(args.name)
        else:
            conversation = chats.get(args.name)
        if args.reset:
            conversation.reset()
            print(f"{args.name}: cleared; the next turn starts a new conversation (its logged runs stay)")
            return None
        if args.fork:
            conversation = conversation.fork(chats.check_conversation_name(args.fork))
            print(f"{args.fork}: a copy of {args.name} ({len(conversation)} turn(s)); the two continue apart")
        display(MarkdownText(for_display(conversation.transcript())))  # the saved notebook keeps secrets masked
        return None

    def _prompts(self, rest: str) -> Any:
        from llmops_lab.magics.adapters import prompts_from_magic_args

        args, unknown = prompts_parser().parse_known_args(shlex.split(rest))
        if unknown:
            raise ConfigError(f"%llm prompts: unknown option {' '.join(unknown)}: use %llm prompts [NAME] [--diff A B]")
        return prompts_from_magic_args(args.name, diff=args.diff)

    def _stats(self, rest: str) -> Any:
        from llmops_lab.analysis.monitoring import stats

        args, unknown = stats_parser().parse_known_args(shlex.split(rest))
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
        for kept in get_tracker().undecryptable.values():  # an earlier kernel's spool, sealed with another key
            print(kept)


def _conversation_table(found: dict[str, Any]) -> Any:
    """``%llm chat``: one row per conversation of this kernel."""
    import pandas as pd

    from llmops_lab.config import get_settings
    from llmops_lab.trust.display import for_display

    if not found:
        print("no conversations in this kernel: start one with %%llm --chat NAME (or %llm chat NAME --resume)")
        return None
    return pd.DataFrame([{"name": c.name, "turns": len(c), "model": c.model or get_settings().model,
                          "conversation": c.id[:8], "resumed": c.resumed,
                          "last": for_display(c.turns[-1].user)[:60] if c.turns else ""} for c in found.values()])
