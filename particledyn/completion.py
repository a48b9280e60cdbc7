"""Shell completion generated from the ``particledyn`` argument parser: every command, its
flags and fixed choices, and file names for its file arguments."""

from __future__ import annotations

import argparse

_FILE_METAVARS = ("SCENARIO.toml", "RUN.h5", "PATH", "DIR", "DEST")


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _words(parser: argparse.ArgumentParser) -> tuple[list[str], dict, bool]:
    """A parser's flags (hidden ones left out), ``{flag: choices}`` and whether it takes files."""
    flags: list[str] = []
    choices: dict[str, list[str]] = {}
    files = False
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        flags += action.option_strings
        if action.option_strings and action.choices:
            for flag in action.option_strings:
                choices[flag] = [str(c) for c in action.choices]
        positional = not action.option_strings
        if positional and action.choices and not isinstance(action, argparse._SubParsersAction):
            choices[""] = [str(c) for c in action.choices]
        files = files or action.metavar in _FILE_METAVARS or (positional and action.dest == "path")
    return flags, choices, files


def bash_completion(parser: argparse.ArgumentParser) -> str:
    """A bash completion script for ``parser.prog`` (``source <(particledyn completion bash)``).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The ``particledyn`` parser (:func:`particledyn.cli.build_parser`).

    Returns
    -------
    str
        Bash source defining ``_<prog>_complete`` and registering it with ``complete``.
    """
    prog = parser.prog
    function = f"_{prog.replace('-', '_')}_complete"
    commands = _subparsers(parser)
    cases = []
    for name, sub in commands.items():
        flags, choices, files = _words(sub)
        nested = _subparsers(sub)
        for flag, values in choices.items():
            if flag:
                words = " ".join(values)
                cases.append(
                    f'        "{name} {flag}") COMPREPLY=($(compgen -W "{words}" -- "$cur")); return;;'
                )
        positional = " ".join(nested) or " ".join(choices.get("", []))
        words = " ".join(flags + ([positional] if positional else []))
        action = f'COMPREPLY=($(compgen -W "{words}" -- "$cur"))'
        if files:
            action += '; [[ "$cur" != -* ]] && COMPREPLY+=($(compgen -f -- "$cur"))'
        cases.append(f'        "{name} "*) {action}; return;;')
    if "scenarios" in commands:  # the names come from the installed package when asked
        names = f"$({prog} scenarios list 2>/dev/null | cut -d' ' -f1)"
        cases.insert(0, f'        "scenarios copy") COMPREPLY=($(compgen -W "{names}" -- "$cur")); return;;')
    top = " ".join([*commands, "--help", "--version"])
    return f"""# bash completion for {prog}, generated from its argument parser
{function}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "{top}" -- "$cur")); return
    fi
    case "${{COMP_WORDS[1]}} $prev" in
{chr(10).join(cases)}
    esac
}}
complete -o default -F {function} {prog}
"""
