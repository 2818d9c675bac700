"""Parsing for the magics: the ``%%llm`` line and the ``%llm`` subcommands' options (argparse, built once),
a dataset argument to its value, and refusing secrets typed into a line. No work and no display here.
"""
from __future__ import annotations

import argparse
import functools
import shlex
from typing import Any

from llmops_lab.exceptions import ConfigError

FORMATS = ("markdown", "text", "json", "code")
STREAMED_FORMATS = ("markdown", "text")  # json and code are judged whole (parsed, put in a cell): never streamed


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
    parser.add_argument("--stream", dest="stream", action="store_true", default=None)
    parser.add_argument("--no-stream", dest="stream", action="store_false")
    parser.add_argument("--schema")  # structured output: a notebook variable (model class, dict) or a .json path
    parser.add_argument("--chat")  # a conversation across cells: its earlier turns go with this one
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
    refuse_secrets(line, "the %%llm line")
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
    if args.chat is not None and args.dataset is not None:
        raise ConfigError("--chat continues one conversation, --dataset runs a batch over rows: use one of them")
    if args.stream and (args.format not in STREAMED_FORMATS or args.logprobs or args.dataset is not None
                        or args.schema is not None):
        what = ("a batch (--dataset)" if args.dataset is not None else "--logprobs" if args.logprobs
                else "--schema (the answer is validated whole)" if args.schema is not None
                else f"--format {args.format}")
        raise ConfigError(f"--stream: {what} does not stream (only one call's text or markdown answer does)")
    if args.model is not None and ":" not in args.model:
        raise ConfigError(f"{args.model!r} is not provider:model (e.g. openai:gpt-4o-mini); options start with --")
    return args


def streams(args: argparse.Namespace, default: bool) -> bool:
    """Whether this cell shows its answer as it arrives: ``--stream``/``--no-stream``, else ``default`` (the
    ``stream`` setting) for one call's text or markdown answer; never in an unattended (papermill) run, whose
    saved notebook only keeps the end."""
    import os

    if args.stream is not None:
        return args.stream
    return (default and args.format in STREAMED_FORMATS and not args.logprobs and args.dataset is None
            and args.schema is None and not os.environ.get("LLMOPS_NOTEBOOK"))


def schema_value(spec: str, user_ns: Any) -> Any:
    """``--schema NAME``: the notebook variable ``NAME`` (a pydantic model class or a JSON-schema dict), else a
    path to a ``.json`` schema file; a name that is neither is a one-line error."""
    import os

    if spec in user_ns:
        return user_ns[spec]
    if spec.isidentifier() and not os.path.exists(spec):
        raise ConfigError(f"--schema {spec}: no variable {spec!r} in the notebook and no file of that name (define a "
                          "pydantic model class or a JSON-schema dict, or give a path to a .json schema file)")
    return spec


def refuse_secrets(text: str, where: str) -> None:
    """A key or password typed into a magic would be saved in the notebook: refuse it, never echo it."""
    from llmops_lab.trust.redaction import find_secrets

    found = find_secrets(text)
    if found:
        raise ConfigError(f"{where} contains what looks like a secret ({', '.join(found)}): refused and not stored. "
                          "Keys are read from the environment (export OPENAI_API_KEY, or the endpoint's api_key_env, "
                          "in the shell that starts Jupyter); remove it from the cell")


@functools.lru_cache(maxsize=1)
def compare_parser() -> argparse.ArgumentParser:
    """``%llm compare P1 P2 … --dataset DF [--models a,b] …``."""
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
    parser.add_argument("--system")
    parser.add_argument("--schema")
    parser.add_argument("--max-cost", type=_amount)
    parser.add_argument("--force", action="store_true")
    return parser


@functools.lru_cache(maxsize=1)
def probe_parser() -> argparse.ArgumentParser:
    """``%llm probe PROMPT --dataset DF --swaps gender[,names] --scorer S …``."""
    parser = _Parser(prog="%llm probe", add_help=False, allow_abbrev=False)
    parser.add_argument("prompt")
    parser.add_argument("--dataset", "-d", required=True)
    parser.add_argument("--swaps", default="gender")
    parser.add_argument("--scorer", "-s", action="append", default=[])
    parser.add_argument("--model", "-m")
    parser.add_argument("--name", "-n")
    parser.add_argument("--concurrency", "-c", type=_whole_number, default=8)
    parser.add_argument("--temperature", "-t")
    parser.add_argument("--max-tokens", dest="max_tokens")
    parser.add_argument("--system")
    parser.add_argument("--max-cost", type=_amount)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--out", "-o")
    return parser


@functools.lru_cache(maxsize=1)
def optimize_parser() -> argparse.ArgumentParser:
    """``%llm optimize PROMPT --dataset DF --scorer S [--proposer P] [--candidates 8] [--rounds 3] …``."""
    parser = _Parser(prog="%llm optimize", add_help=False, allow_abbrev=False)
    parser.add_argument("prompt")
    parser.add_argument("--dataset", "-d", required=True)
    parser.add_argument("--scorer", "-s", action="append", default=[])
    parser.add_argument("--model", "-m")
    parser.add_argument("--proposer")
    parser.add_argument("--candidates", type=_whole_number, default=8)
    parser.add_argument("--rounds", type=_whole_number, default=3)
    parser.add_argument("--seed", type=_whole_number, default=0)
    parser.add_argument("--label")
    parser.add_argument("--few-shot", dest="few_shot", type=_whole_number, default=2)
    parser.add_argument("--name", "-n")
    parser.add_argument("--concurrency", "-c", type=_whole_number, default=8)
    parser.add_argument("--temperature", "-t")
    parser.add_argument("--max-tokens", dest="max_tokens")
    parser.add_argument("--max-cost", type=_amount)
    parser.add_argument("--out", "-o")
    return parser


@functools.lru_cache(maxsize=1)
def chat_parser() -> argparse.ArgumentParser:
    """``%llm chat [NAME] [--reset | --fork NEW | --resume]``."""
    parser = _Parser(prog="%llm chat", add_help=False, allow_abbrev=False)
    parser.add_argument("name", nargs="?")
    actions = parser.add_mutually_exclusive_group()
    actions.add_argument("--reset", action="store_true")
    actions.add_argument("--fork", metavar="NEW")
    actions.add_argument("--resume", action="store_true")
    return parser


@functools.lru_cache(maxsize=1)
def prompts_parser() -> argparse.ArgumentParser:
    """``%llm prompts [NAME] [--diff A B]``."""
    parser = _Parser(prog="%llm prompts", add_help=False, allow_abbrev=False)
    parser.add_argument("name", nargs="?")
    parser.add_argument("--diff", nargs=2)
    return parser


@functools.lru_cache(maxsize=1)
def stats_parser() -> argparse.ArgumentParser:
    """``%llm stats [--since 7d] [--by …] [--experiment NAME] [--plot]``."""
    parser = _Parser(prog="%llm stats", add_help=False, allow_abbrev=False)
    parser.add_argument("--since", default="7d")
    parser.add_argument("--by")
    parser.add_argument("--experiment")
    parser.add_argument("--plot", action="store_true")
    return parser


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
