"""Snakemake's logger plugin ``ouroboros`` (``--logger ouroboros``; the workflow profile switches it on): a thin
adapter from Snakemake's log records to :mod:`ouroboros.console`, which decides what the terminal shows.

A dry run, and any record the console does not turn into one of its lines, is shown as Snakemake shows it
(its default filter and formatter); the full log, job stanzas included, is Snakemake's log file as always."""

import sys
from dataclasses import dataclass, field

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from ouroboros import cliargs, console


def _refuse_bad_configfiles(argv) -> None:
    """Snakemake opens ``--configfile`` before the workflow starts (a FIFO hangs, ``/dev/zero`` fills memory, a
    missing file is a traceback): this module is imported while Snakemake builds its argument parser, so for this
    workflow's command lines the files are checked here first, each refused in one line (ouroboros.cliargs)."""
    files = cliargs.configfiles(argv)
    if not files:
        return
    from ouroboros import preflight  # 0.2 s, only for a command line that names config files

    for f in files:
        try:
            preflight.load_yaml(f)  # a file opting in to YTE is flagged here, before Snakemake runs its code
        except preflight.ConfigError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None


_refuse_bad_configfiles(sys.argv)


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    stanzas: bool = field(default=False, metadata={
        "help": "Also show Snakemake's job stanzas on the terminal (they are always in its log file)"})


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        from snakemake.logging import DefaultFilter, DefaultFormatter

        s = self.common_settings
        self._snakemake_filter = DefaultFilter(s.quiet, s.debug_dag, s.verbose, s.dryrun, s.printshellcmds)
        self._snakemake_format = DefaultFormatter(s.quiet, s.show_failed_logs)
        self._stream = sys.stdout if s.stdout else sys.stderr
        self._quiet = bool(s.quiet) and "progress" in {str(q).lower() for q in s.quiet}
        self._console = console.Console()

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def _write(self, text: str) -> None:
        if text:
            self._stream.write(text.rstrip("\n") + "\n")
            self._stream.flush()

    def emit(self, record) -> None:
        try:
            event = str(getattr(record, "event", "") or "")
            as_snakemake = self.common_settings.dryrun or self.settings is not None and self.settings.stanzas
            if as_snakemake and self._snakemake_filter.filter(record):
                self._write(self._snakemake_format.format(record))
            if self.common_settings.dryrun:
                return
            line = None
            if event == "job_info":
                self._console.job_info(record)
            elif event == "job_finished":
                line = self._console.finished(record)
            elif event == "progress":
                line = self._console.progress(record)
            elif not as_snakemake and console.shown(record, self._quiet) and self._snakemake_filter.filter(record):
                line = self._snakemake_format.format(record)
            if line and not (self._quiet and event in ("job_finished", "progress")):
                self._write(line)
        except Exception:
            self.handleError(record)
