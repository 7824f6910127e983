"""`zoo verify`: check an architecture or a checkpoint directory against transformers."""

from __future__ import annotations

import json
import sys

import click

from .common import json_flag, registry


@click.command("verify")
@click.argument("target")
@json_flag
def verify_command(target: str, as_json: bool) -> None:
    """Check TARGET against its transformers reference (architecture or checkpoint folder).

    TARGET is a registered architecture (LlamaForCausalLM, ...: its plugin's variants,
    with random weights) or a checkpoint directory (its own weights). Compared: logits
    at the prefill and every decode step, greedy tokens, batch against one at a time,
    cached against recomputed. Exits with status 1 if any variant fails."""
    from zoo.verify import verify

    reports = verify(target, registry(), log=lambda m: click.echo(f"zoo: {m}", err=True))
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        for report in reports:
            status = "ok" if report.passed else "FAILED"
            worst = max(report.step_logit_diffs, default=0.0)
            click.echo(f"{report.architecture} / {report.variant}: {status}  (max logit diff {worst:.2g} over "
                       f"{len(report.step_logit_diffs)} steps, batch {report.batch_vs_single_diff:.2g}, "
                       f"cache {report.cached_vs_recomputed_diff:.2g}, greedy {'equal' if report.greedy_tokens_equal else 'different'})")
            for failure in report.failures:
                click.echo(f"  {failure}")
    failed = [r for r in reports if not r.passed]
    if failed:
        click.echo(f"zoo: error: {len(failed)} of {len(reports)} variants failed: "
                   + ", ".join(f"{r.variant} ({r.failures[0]})" for r in failed), err=True)
        sys.exit(1)
