"""docs/CONTRACTS.md lists every command and flag users rely on."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from analysis import ligand_affinity, nuclei_impact
from artseg.cli import build_parser

CONTRACTS = (Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md").read_text(encoding="utf-8")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (subparsers,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    commands = {f"artseg {name}": sub for name, sub in subparsers.choices.items()}
    commands["python -m analysis.ligand_affinity"] = ligand_affinity.build_parser()
    commands["python -m analysis.nuclei_impact"] = nuclei_impact.build_parser()
    return commands


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_flag_of_every_command_is_in_the_contracts(command):
    lines = [line for line in CONTRACTS.splitlines() if line.startswith(f"- `{command} ") or
             line.startswith(f"- `{command}`")]
    assert lines, f"{command} is not listed in docs/CONTRACTS.md"
    flags = {option for action in _commands()[command]._actions for option in action.option_strings
             if option.startswith("--") and option != "--help"}
    missing = sorted(flag for flag in flags if f"{flag} " not in lines[0] and f"{flag}]" not in lines[0]
                     and f"{flag}`" not in lines[0] and f"{flag}=" not in lines[0])
    assert missing == []
