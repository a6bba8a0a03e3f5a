"""`nimbus completion bash`: a bash completion script generated from the grammar itself,
so it never falls behind a new command or flag. Pure: parser in, script out.

Each command path (`nimbus`, `nimbus functions`, `nimbus functions alias`, ...) maps to the words
that may follow it: its sub-commands and its flags. The script walks the words typed so
far along the known paths and offers the words of the deepest one reached.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_words(p: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, list[str]]]:
    """(path, words that may follow it) for `p` and every command under it."""
    subs = _subparsers(p)
    flags = sorted(
        s
        for a in p._actions
        for s in a.option_strings
        if s.startswith("--") and a.help != argparse.SUPPRESS
    )
    yield path, [*sorted(subs), *flags]
    for name, child in sorted(subs.items()):
        yield from command_words(child, f"{path} {name}")


def bash_script(p: argparse.ArgumentParser, prog: str = "nimbus") -> str:
    """The completion script: `source <(nimbus completion bash)`."""
    fn = f"_{prog}_complete"
    entries = "\n".join(
        f'    ["{prog}{path}"]="{" ".join(words)}"' for path, words in command_words(p)
    )
    return f"""# bash completion for {prog}: source <({prog} completion bash)
declare -gA _{prog}_words=(
{entries}
)
{fn}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path="{prog}" word i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        [[ "$word" == -* ]] && continue
        [[ -n "${{_{prog}_words["$path $word"]+set}}" ]] && path="$path $word"
    done
    COMPREPLY=($(compgen -W "${{_{prog}_words["$path"]}}" -- "$cur"))
}}
complete -o default -F {fn} {prog}
"""
