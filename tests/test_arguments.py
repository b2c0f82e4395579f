"""The command line as a new user meets it: --version, help for every command and option with
its default, and arguments that parse but make no sense refused before any work."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from scorelink import __version__
from scorelink.cli import _parser, main


def _commands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _commands(sub, f"{prefix}{name} ")


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"scorelink {__version__}"
    commands = dict(_commands(_parser()))
    assert {"search", "index", "serve", "align", "evaluate", "data build"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description, f"{name} has no description"
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue  # its commands are checked in turn
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    text = commands["search"].format_help()
    assert "(default: 10)" in text and "(default: passage)" in text  # --top, --by
    assert "(default: None)" not in commands["index"].format_help()


@pytest.mark.parametrize("argv, words", [
    (["search", "--index", "I", "--audio", "a.wav", "--top", "0"], "--top: must be 1 or more"),
    (["search", "--index", "I", "--audio", "a.wav", "--top", "-3"], "--top: must be 1 or more"),
    (["search", "--index", "I", "--audio", "a.wav", "--top", "many"], "expected a whole number"),
    (["search", "--index", "I", "--audio", "a.wav", "--start", "-1"], "0 seconds or more"),
    (["search", "--index", "I", "--image", "p.png", "--system", "0"], "--system: must be 1"),
    (["evaluate", "--data", "D", "--tempo", "0"], "--tempo: must be above 0"),
    (["serve", "--index", "I", "--port", "70000"], "a port is 0 to 65535"),
    (["data", "build", "--corpus", "chorales", "--out", "D", "--workers", "0"], "--workers"),
    (["demo", "--limit", "0"], "--limit: must be 1 or more"),
])
def test_bad_values_are_refused_by_the_parser(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["search", "--index", "I", "--audio", "a.wav", "--start", "8", "--end", "2"],
     "--end (2 s) must be after --start (8 s)"),
    (["search", "--index", "I", "--audio", "a.wav", "--start", "3", "--end", "3"],
     "must be after --start"),
    (["search", "--index", "I", "--image", "p.png", "--start", "3"],
     "--start and --end choose a part of an --audio query"),
    (["search", "--index", "I", "--audio", "a.wav", "--system", "2"],
     "--system chooses a system of an --image query"),
    (["search", "--index", "I", "--queries", "q.jsonl", "--end", "3"], "on each line"),
    (["align", "--score", "S.musicxml", "--recording", "R.wav"], "--score S.musicxml does not"),
    (["evaluate", "--data", "D", "--json", "no/such/folder/m.json"], "folder no/such/folder"),
])
def test_arguments_that_make_no_sense_together(argv, words, capsys):
    # the index, files and folders named do not exist: the arguments are refused first
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("scorelink: error: ") and words in err, err


@pytest.mark.parametrize("module", ["scorelink", "scorelink.cli"])
def test_runs_as_a_module(module, tmp_path):
    """`python -m scorelink` and `python -m scorelink.cli` are the `scorelink` command: they
    answer, and refuse with its message and exit status."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    version = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True,
                             text=True, env=env, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"scorelink {__version__}"
    refused = subprocess.run([sys.executable, "-m", module, "search", "--index",
                              str(tmp_path / "none"), "--audio", "x.wav"], capture_output=True,
                             text=True, env=env, timeout=60)
    assert refused.returncode == 2 and "is not a scorelink index" in refused.stderr
