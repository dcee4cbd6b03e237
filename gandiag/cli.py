"""The command line: thin click commands over gandiag's public API.

    gandiag run --loss all --data ring8,digits
    gandiag report runs/<sweep>
    gandiag report runs/<sweep> --json --fail-on divergence

Results go to stdout, progress and errors to stderr. Every error is one line.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from gandiag.analysis import analyze_runs, check_kinds
from gandiag.data import DATASETS, DataError
from gandiag.detectors import DETECTORS
from gandiag.losses import LOSSES
from gandiag.report import text_summary, write_report
from gandiag.rundir import RunDirError, describe_os_error, jsonable
from gandiag.train import TrainConfig, sweep
from gandiag.zoo.scenarios import TIERS

_DEFAULT = TrainConfig()


class _Fail(click.ClickException):
    """A one-line error: 'gandiag: error: ...' on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"gandiag: error: {self.message}", err=True)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _losses(value: str) -> list[str]:
    if value.strip() == "all":
        return list(LOSSES)
    names = list(dict.fromkeys(_split(value)))
    bad = [n for n in names if n not in LOSSES]
    if bad or not names:
        raise _Fail(f"Expected --loss to be 'all' or names from {sorted(LOSSES)} but got {value!r}")
    return names


def _flag_names(message: str) -> str:
    # TrainConfig speaks of its fields; on the command line they are flags.
    for name in ("steps", "batch_size", "lr_g", "lr_d", "d_steps", "threads", "seed"):
        message = message.replace(f"Expected {name} ", f"Expected --{name.replace('_', '-')} ")
    return message


def _os_error(exc: OSError, expected: str) -> str:
    return f"Expected {expected} but got {describe_os_error(exc)}"


def _seeds(value: str) -> list[int]:
    try:
        seeds = [int(s) for s in _split(value)]
    except ValueError:
        raise _Fail(f"Expected --seeds to be integers like '0,1,2' but got {value!r}") from None
    if not seeds or any(not 0 <= s < 2**63 for s in seeds):
        raise _Fail(f"Expected --seeds to be integers in [0, 2**63) but got {value!r}")
    return list(dict.fromkeys(seeds))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gandiag")
def main():
    """Diagnose GAN training: train, record, detect, report."""


@main.command()
@click.option("--loss", default=_DEFAULT.loss, show_default=True,
              help=f"A loss, a comma list, or 'all'. One of: {', '.join(LOSSES)}.")
@click.option("--data", default=_DEFAULT.data, show_default=True,
              help=f"A data set or a comma list: {', '.join(DATASETS)}, or a .npy/.npz file (N x D or N x H x W[x C]).")
@click.option("--seeds", default=str(_DEFAULT.seed), show_default=True, help="Comma list of seeds; each is matched across losses.")
@click.option("--steps", type=int, default=_DEFAULT.steps, show_default=True, help="Generator updates per run.")
@click.option("--batch-size", type=int, default=_DEFAULT.batch_size, show_default=True,
              help="Real and fake samples per step.")
@click.option("--lr-g", type=float, default=_DEFAULT.lr_g, show_default=True, help="Adam learning rate of G.")
@click.option("--lr-d", type=float, default=_DEFAULT.lr_d, show_default=True, help="Adam learning rate of D.")
@click.option("--d-steps", type=int, default=_DEFAULT.d_steps, show_default=True, help="D updates per G update.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=_DEFAULT.device, show_default=True)
@click.option("--threads", type=int, default=_DEFAULT.threads, show_default=True,
              help="CPU threads while training (small models train fastest on one).")
@click.option("--out", type=click.Path(file_okay=False), default="runs", show_default=True,
              help="Parent folder; each invocation writes a new timestamped sweep folder inside it.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(loss, data, seeds, steps, batch_size, lr_g, lr_d, d_steps, device, threads, out, quiet):
    """Train small GANs under each loss variant with matched seeds, and analyse them."""
    losses, seed_list, datasets = _losses(loss), _seeds(seeds), list(dict.fromkeys(_split(data)))
    if not datasets:
        raise _Fail(f"Expected --data to name a data set but got {data!r}")
    try:
        base = replace(_DEFAULT, steps=steps, batch_size=batch_size, lr_g=lr_g, lr_d=lr_d,
                       d_steps=d_steps, device=device, threads=threads, loss=losses[0], seed=seed_list[0])
        sweep_dir = Path(out).expanduser() / time.strftime("%Y%m%d-%H%M%S")
        result = sweep(losses, datasets, seed_list, base, sweep_dir, progress=not quiet)
    except (ValueError, DataError) as exc:
        raise _Fail(_flag_names(str(exc))) from None
    except OSError as exc:
        raise _Fail(_os_error(exc, "a folder the runs can be written to (--out)")) from None
    for rd in result.run_dirs:
        click.echo(str(rd))
    click.echo(f"sweep: {result.out}  (next: gandiag report {result.out})", err=True)


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write [default: reports/report-<time>.html; with --json, none unless given].")
@click.option("--json", "as_json", is_flag=True,
              help="Print the findings as JSON instead of the text summary (no HTML unless --out is given).")
@click.option("--fail-on", default="", help="Exit with status 1 when any of these finding kinds (comma list) is present.")
def report(run_dirs, out, as_json, fail_on):
    """Analyse run directories (or sweep folders), write one HTML report and each
    run's findings.json."""
    try:
        fail_kinds = check_kinds(_split(fail_on))
        result = analyze_runs([str(Path(d).expanduser()) for d in run_dirs], write=False)
        for skipped, why in result.skipped:
            click.echo(f"gandiag: warning: skipped {skipped}: {why}", err=True)
        # The report reads the sample files; only once it is written do the runs get findings.json.
        path = None
        if out is not None or not as_json:
            try:
                path = write_report(result.runs, result.findings, out=None if out is None else Path(out).expanduser(),
                                    descriptions={k: cls.description for k, cls in DETECTORS.items()})
            except OSError as exc:
                raise _Fail(_os_error(exc, "a writable place for the report (--out)")) from None
        for unsaved, why in result.write_findings():
            click.echo(f"gandiag: warning: findings.json not saved in {unsaved} ({why}); the report has them", err=True)
    except (RunDirError, ValueError, OSError) as exc:
        raise _Fail(str(exc)) from None
    if as_json:
        click.echo(json.dumps({str(r.path): fs for r, fs in zip(result.runs, result.findings)}, indent=2))
    else:
        click.echo(text_summary(result.runs, result.findings))
    if path is not None:
        click.echo(f"report: {path}", err=True)
    hit = sorted(set(fail_kinds) & result.kinds())
    if hit:
        click.echo(f"gandiag: failing on findings: {', '.join(hit)}", err=True)
        sys.exit(1)


@main.command()
@click.option("--tier", type=click.Choice(list(TIERS)), default="quick", show_default=True,
              help="quick: the CI set (1-2 minutes on one CPU core); full: more seeds and settings (~9 minutes).")
@click.option("-o", "--out", type=click.Path(file_okay=False), required=True,
              help="Folder for the scenario runs, zoo_results.json and zoo_report.md.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Scenarios run in parallel.")
@click.option("--reuse", is_flag=True, help="Keep scenario runs already recorded in --out; re-run only the detectors.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON instead of the summary.")
@click.option("--fail-below", type=click.FloatRange(0, 1), default=None,
              help="Exit 1 when a target kind's precision or recall, or the share of healthy runs "
                   "without findings, is below this (over all scored scenarios). For CI.")
def zoo(tier, out, jobs, reuse, as_json, fail_below):
    """Run labelled healthy and pathological scenarios and score every finding kind."""
    from gandiag.zoo import evaluate_zoo, text_summary

    command = (f"gandiag zoo --tier {tier} -o {out}" + (f" --jobs {jobs}" if jobs > 1 else "")
               + (" --reuse" if reuse else ""))
    try:
        summary = evaluate_zoo(tier, Path(out).expanduser(), jobs=jobs, reuse=reuse, command=command)
    except (ValueError, FileExistsError) as exc:
        raise _Fail(str(exc)) from None
    click.echo(json.dumps(jsonable(summary["scores"]), indent=2) if as_json else text_summary(summary))
    click.echo(f"report: {Path(out) / 'zoo_report.md'}", err=True)
    if fail_below is not None:
        from gandiag.zoo import shortfalls

        short = shortfalls(summary, fail_below)
        if short:
            click.echo(f"gandiag: zoo below {fail_below}: {'; '.join(short)}", err=True)
            sys.exit(1)


if __name__ == "__main__":
    main()
