"""The ``harness`` command. Imports nothing heavy at module level: ``harness --help`` and
``harness plugins`` must stay instant even with torch-based plugins installed."""

from __future__ import annotations

import json
import sys

import click

from . import __version__
from .errors import HarnessError


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so it unwinds like Ctrl-C: atomic writes are
    discarded, MLflow runs in progress are ended FAILED, staging folders are removed. (The
    default SIGTERM action kills the process on the spot and leaves all of that behind.)"""


def _on_sigterm(signum, frame):
    raise Terminated()


class _Group(click.Group):
    """Print HarnessError messages cleanly (no traceback) with exit code 2; SIGTERM and Ctrl-C
    unwind cleanly and exit 143 / 130."""

    def invoke(self, ctx):
        import signal
        import threading

        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except Terminated:
            click.echo("Error: terminated (SIGTERM); nothing half-written was kept, and a rerun "
                       "resumes from the feature cache", err=True)
            sys.exit(143)
        except KeyboardInterrupt:
            click.echo("Error: interrupted; nothing half-written was kept, and a rerun resumes "
                       "from the feature cache", err=True)
            sys.exit(130)
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harness")
@click.option("-v", "--verbose", is_flag=True,
              help="Show third-party warnings, logs and progress bars (hidden by default; the "
                   "list is in harness/quiet.py).")
def cli(verbose):
    """Membership and dataset inference benchmarks for audio generative models.

    \b
    Typical use:
      harness plugins                     list models, attacks, aggregators, datasets
      harness validate suites/paper.yaml  check a suite without loading any model
      harness run suites/demo.yaml        extract → score → evaluate → log to MLflow
      harness report                      paper-style tables from MLflow
    """
    import warnings

    from . import quiet
    from .plugins import PluginLoadWarning

    quiet.install(verbose=verbose)

    # reported once, as "warning: ..." lines, by the commands that load plugins
    warnings.filterwarnings("ignore", category=PluginLoadWarning)


_suite_options = [
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                 help="Override a suite key, e.g. --set models.canary.params.steps=500 "
                      "(repeatable; values are YAML)."),
    click.option("--limit", type=int, default=None,
                 help="Cap members and non-members per data entry (quick runs)."),
    click.option("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1."),
]


def suite_options(f):
    for opt in reversed(_suite_options):
        f = opt(f)
    return f


@cli.command()
@click.argument("suite_file", type=click.Path(dir_okay=False))
@suite_options
@click.option("--no-log", is_flag=True, help="Keep results on disk only; log later with "
                                             "`harness log`.")
@click.option("--keep-going/--fail-fast", default=True, show_default=True,
              help="A model that fails at run time is listed at the end (and in results.json) "
                   "while the other models' cells still run; --fail-fast stops at once.")
@click.option("--shard", default=None, metavar="I/K",
              help="Only extract shard I of K of every cell into the feature cache (no scoring, "
                   "no MLflow), e.g. a Slurm array task; a run without --shard then scores.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None,
              help="Where features are extracted (suite key 'executor'; default local).")
@click.option("--address", default=None, metavar="ADDR",
              help="Ray cluster for --executor ray: auto, ray://host:10001 (default: start one "
                   "here).")
def run(suite_file, overrides, limit, device, no_log, keep_going, shard, executor, address):
    """Run SUITE_FILE: extract features, score, evaluate MIA and DI, log to MLflow.

    Exits 1 when a model failed (its cells are missing from the results)."""
    from . import runner, suite as suite_mod

    overrides = list(overrides)
    if executor is not None:
        overrides.append(f"executor={executor}")
    if address is not None:
        overrides.append(f"ray.address={json.dumps(address)}")
    s, text = suite_mod.load(suite_file, overrides, limit, device)
    if address is not None and s.executor != "ray":
        raise click.UsageError("--address is the Ray cluster of --executor ray")
    for w in suite_mod.check_plugins(s, text, suite_file) + _load_problems():
        click.echo(f"warning: {w}", err=True)
    if shard is not None:
        from . import extract, shards

        if s.executor != "local":
            raise click.UsageError("--shard extracts one shard in this process; it does not "
                                   "combine with executor ray (Ray shards the cells itself)")
        extract.run_shard(s, shards.parse(shard))
        return
    out = runner.run(s, text, log=not no_log, keep_going=keep_going)
    from .summary import console_summary

    click.echo(console_summary(out))
    failures = json.loads((out / "results.json").read_text()).get("failures") or []
    if failures:
        click.echo(f"{len(failures)} model(s) failed; their cells are missing:", err=True)
        for f in failures:
            click.echo(f"  {f['model']}: {f['error']}", err=True)
        sys.exit(1)


@cli.command()
@click.argument("suite_file", type=click.Path(dir_okay=False))
@suite_options
def validate(suite_file, overrides, limit, device):
    """Check SUITE_FILE without loading weights: schema, plugin names and parameter keys, every
    data reference (files, manifest columns, split values, enough samples for n_members /
    n_nonmembers, canaries' training data) and every attack's needs against its model's outputs.
    """
    from . import preflight, suite as suite_mod

    s, text = suite_mod.load(suite_file, list(overrides), limit, device)
    warnings = suite_mod.check_plugins(s, text, suite_file) + _load_problems()
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    for line in preflight.check(s):
        click.echo(line)
    n_cells = sum(len(s.data_for(m)) for m in s.models)
    click.echo(f"{suite_file}: OK — {len(s.models)} model(s), {len(s.data)} data set(s), "
               f"{n_cells} cell(s), {len(s.attacks)} attack(s), {len(s.aggregators)} aggregator(s)")


@cli.command()
@click.argument("name", required=False)
@click.option("--all", "show_all", is_flag=True, help="Also show each plugin's description.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--kind", type=click.Choice(["model", "attack", "aggregator", "dataset",
                                            "baseline"]),
              default=None, help="Only one kind.")
def plugins(name, show_all, as_json, kind):
    """List registered plugins: name, kind, family, distribution and version.

    With NAME, show that plugin in full: description, family, what it needs or provides, every
    parameter with its default and doc, and an example suite entry."""
    from . import plugins as plugins_mod

    items = [p for p in plugins_mod.all_plugins() if kind is None or p.kind == kind]
    if name is not None:
        from .errors import UnknownNameError
        from .plugin_docs import describe, parameters

        chosen = [p for p in items if p.name == name]
        if not chosen:
            raise UnknownNameError(plugins_mod.unknown_message(
                kind or "plugin", name, {p.name: p for p in items}))
        if as_json:
            click.echo(json.dumps([{**p.as_dict(), "parameters": parameters(p.load())}
                                   for p in chosen], indent=2, default=str))
        else:
            click.echo("\n\n".join(describe(p) for p in chosen))
        return
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in items], indent=2))
    else:
        rows = [(p.name, p.kind, p.family, f"{p.distribution} {p.version or ''}".strip())
                + ((p.description,) if show_all else ()) for p in items]
        header = ("name", "kind", "family", "distribution") + (("description",) if show_all else ())
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        for r in [header] + rows:
            click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    for problem in _load_problems():
        click.echo(f"warning: {problem}", err=True)


def _load_problems() -> list[str]:
    from .plugins import load_problems

    return list(load_problems)


@cli.command()
@click.option("--members", required=True, metavar="DIR|CSV",
              help="Recordings the model was (suspected to be) trained on: a folder or a CSV "
                   "manifest (columns path, caption, optional split).")
@click.option("--nonmembers", required=True, metavar="DIR|CSV",
              help="Recordings of the same kind the model cannot have seen.")
@click.option("--model", required=True, help="A model plugin (see `harness plugins --kind "
                                             "model`), e.g. diffusion-canary.")
@click.option("--members-split", default=None, help="Split value for --members (a manifest's "
                                                    "split column); default: all.")
@click.option("--nonmembers-split", default=None, help="Split value for --nonmembers.")
@click.option("--name", default="my-audit", show_default=True, help="Suite name.")
@click.option("-o", "--output", default="suite.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="Where to write the suite ('-': stdout).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(members, nonmembers, model, members_split, nonmembers_split, name, output, force):
    """Write a commented starter suite that audits MODEL on your recordings."""
    from pathlib import Path

    from . import atomic
    from .init_suite import starter_suite

    text = starter_suite(members, nonmembers, model, name=name, members_split=members_split,
                         nonmembers_split=nonmembers_split)
    if output == "-":
        click.echo(text, nl=False)
        return
    if Path(output).exists() and not force:
        raise HarnessError(f"{output} exists; choose another --output or pass --force")
    atomic.write_text(Path(output), text)
    click.echo(f"wrote {output}; next: harness validate {output} && harness run {output}")


@cli.command()
@click.argument("suite_file", required=False, type=click.Path(dir_okay=False))
@click.option("--experiment", default=None,
              help="MLflow experiment (default: the suite's, else the most recent).")
@click.option("--tracking-uri", default=None,
              help="Default: the suite's mlflow.tracking_uri, else sqlite:///mlflow.db.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md", show_default=True)
@click.option("--all-runs", is_flag=True, help="Use every suite run, newest result per cell.")
@click.option("--run", "run_id", default=None, help="A specific parent (suite) run id.")
def report(suite_file, experiment, tracking_uri, fmt, all_runs, run_id):
    """Paper-style tables (attacks × models, AUC and TPR@1%FPR ± std; DI minimum n) from MLflow.

    With SUITE_FILE, the store and experiment are the ones that suite logs to."""
    from .report import report as make_report

    if suite_file is not None:
        from . import suite as suite_mod

        s, _ = suite_mod.load(suite_file)
        tracking_uri = tracking_uri or s.mlflow.tracking_uri
        experiment = experiment or s.mlflow.experiment or s.name
    tracking_uri = tracking_uri or "sqlite:///mlflow.db"
    click.echo(make_report(tracking_uri, experiment, fmt=fmt,
                           run="all" if all_runs else run_id))


@cli.command("log")
@click.argument("results_dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--pending", "pending_root", default=None, type=click.Path(file_okay=False),
              help="Log every not-yet-logged results directory under this root.")
@click.option("--tracking-uri", default="sqlite:///mlflow.db", show_default=True)
@click.option("--experiment", default=None,
              help="Default: the suite's mlflow.experiment, else its name.")
@click.option("--force", is_flag=True, help="Log again even if already logged.")
def log_cmd(results_dirs, pending_root, tracking_uri, experiment, force):
    """Log results directories kept on disk (e.g. after MLflow was unreachable)."""
    from .tracking import log_results, pending

    dirs = list(results_dirs)
    if pending_root:
        dirs += [str(p) for p in pending(pending_root)]
    if not dirs:
        if pending_root:
            click.echo(f"nothing to log: every results directory under {pending_root} is logged")
            return
        raise click.UsageError("give results directories or --pending ROOT")
    for d in dirs:
        run_id = log_results(d, tracking_uri=tracking_uri, experiment=experiment, force=force)
        click.echo(f"{d}: {run_id}")


def main():
    cli(prog_name="harness")


if __name__ == "__main__":  # pragma: no cover
    main()
