"""Everything checked before the first job runs.

:func:`prepare` is what the workflow does when it reads a study (``rules/common.smk``) and what
``ouroboros check FILE`` does without Snakemake: the config against ``config/schema.yaml`` and every
registered kind's own schema, NaN and infinities, sweep plots, the size of every job and the number of
jobs against ``limits``, and a SQLite tracking database's folder.  Each problem is one
:class:`~ouroboros.settings.ConfigError` line naming the key and, where known, the file and line that set it.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import yaml

from ouroboros import claims, costs, paths
from ouroboros.config import Study, load_schema, validate_schema
from ouroboros.costs import GB, job_bytes, machine_memory  # noqa: F401 (sizes, re-exported)
from ouroboros.settings import ConfigError
from ouroboros.sweeps import check_specs
from ouroboros.trackconf import TrackingError, resolve_artifacts, resolve_uri, sqlite_path
from ouroboros.units import generation_files, weight_readers


@dataclass
class Prepared:
    study: "object"
    sweep_plots: dict
    tracking: dict
    #: what the study will cost (ouroboros.costs.Estimate: jobs, memory, disk; no time), where it was checked
    costs: Optional["object"] = None
    #: the config files that opt in to YTE templating (code Snakemake runs as it reads them)
    yte: tuple = ()


# -- where a key was written -----------------------------------------------------------------------
def _path_of(at: str) -> list:
    """``experiments[2].params.d`` -> ["experiments", 2, "params", "d"]."""
    at = re.sub(r" \(sweep [^)]*\)", "", at)
    out: list = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", at):
        out.append(int(index) if index else name)
    return out


def _node_line(path: Path, keys: list) -> Optional[int]:
    """1-based line of the deepest node of ``keys`` written in the YAML file (None: not in it)."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            hit = next(((k, v) for k, v in node.value if getattr(k, "value", None) == key), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 1, hit[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def locate(message: str, configfiles: Sequence) -> str:
    """Add the file and line that set the key named by an "invalid config at KEY: ..." message; later files
    override earlier ones (Snakemake's order), so the last file that holds the key is named."""
    m = re.match(r"invalid config at (.+?): ", message)
    if not m or not configfiles:
        return message
    keys = _path_of(m.group(1))
    if not keys:
        return message
    for f in reversed([Path(f) for f in configfiles]):
        line = _node_line(f, keys) if f.is_file() else None
        if line is not None:
            return f"{message[:m.end(1)]} ({f}, line {line}){message[m.end(1):]}"
    return message


def _strict_loader():
    """PyYAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last silently)."""
    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise ConfigError(f"line {line}: the key {key!r} is written twice in one mapping (first at "
                                          f"line {seen[key]}); keep one")
                    seen[key] = line
                except TypeError:  # an unhashable key: PyYAML names it itself
                    continue
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


#: the largest config file read: a study file is a few kB (the largest shipped is under 10 kB)
MAX_CONFIG_BYTES = 1 << 20
#: the deepest nesting of mappings and lists read (the shipped studies go 6 deep)
MAX_CONFIG_DEPTH = 64


def _nesting_too_deep(text: str) -> bool:
    """Whether ``text`` nests collections more than :data:`MAX_CONFIG_DEPTH` deep, read from PyYAML's token stream
    (which is flat: building the nodes recurses once per level, and runs into Python's recursion limit slowly)."""
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken,
                              yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)):
            depth += 1
            if depth > MAX_CONFIG_DEPTH:
                return True
        elif isinstance(token, (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)):
            depth -= 1
    return False


def load_yaml(path) -> dict:
    """A config file as a mapping; a syntax error names the file, line and column.  Refused before it is read: a
    file that is not a regular file (a FIFO would wait forever, /dev/zero never end) or is larger than
    :data:`MAX_CONFIG_BYTES`; then one that is not UTF-8 text, an empty one, one nested too deep, a key written
    twice in one mapping.  A file that opts in to Snakemake's YTE templating is flagged (see :func:`yte_warning`),
    once per process."""
    path = Path(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
            raise ConfigError(f"the config file {path} is {kind}, not a YAML file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"the config file {path} holds {st.st_size / 1e6:.1f} MB: a study file is a few kB "
                              f"(at most {MAX_CONFIG_BYTES >> 20} MB is read)")
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"the config file {path} is larger than {MAX_CONFIG_BYTES >> 20} MB")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text (UTF-8) file, so not a config file (byte {exc.start} is "
                          f"0x{exc.object[exc.start]:02x})") from None
    if "\0" in text:
        raise ConfigError(f"{path}: not a text file (it holds NUL bytes), so not a config file")
    try:
        if _nesting_too_deep(text):
            raise RecursionError
        data = yaml.load(text, Loader=_strict_loader())
    except ConfigError as exc:
        raise ConfigError(f"{path}, {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deep to be a config file (more than {MAX_CONFIG_DEPTH} levels of "
                          "mappings and lists)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty (write at least the keys it changes, such as study)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file is a mapping of keys (study, experiments, ...), "
                          f"got a {type(data).__name__}")
    if data.get("__use_yte__") is True:
        if str(path.resolve()) not in _YTE_FLAGGED:
            _YTE_FLAGGED.add(str(path.resolve()))
            print(yte_warning(path), file=sys.stderr)
        data = {k: v for k, v in data.items() if k != "__use_yte__"}
    return data


#: the YTE files flagged in this process (the logger plugin reads the files before Snakemake, the workflow after)
_YTE_FLAGGED: set[str] = set()


def yte_warning(path) -> str:
    """What a config that opts in to YTE templating is: code (Snakemake evaluates the Python in it as it reads
    the file, before this check; ``ouroboros check`` reads it as plain YAML and runs nothing)."""
    return (f"Warning: {path} opts in to YTE templating (__use_yte__: true): snakemake runs the Python in it when "
            "it reads the file; read it as code before running it (ouroboros check reads it as plain YAML)")


def merge(base: dict, override: dict) -> dict:
    """Snakemake's rule for several config files: mappings merge key by key, anything else is replaced; and
    ours for claims (:func:`own_claims`): an override naming another study and no claims drops the base's."""
    out = _merge(base, override)
    own_claims(out, [base, override])
    return out


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# -- the config's own size -------------------------------------------------------------------------
#: values a config may hold once YAML aliases are expanded (the largest shipped study holds about 300)
MAX_CONFIG_VALUES = 100_000


def _expanded(value, memo: dict) -> int:
    """How many values ``value`` holds with every alias expanded, counted once per distinct container (an
    alias is the same Python object), so a "billion laughs" is counted, not walked."""
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key not in memo:
        memo[key] = 0  # a recursive alias counts as a leaf here; the schema refuses it anyway
        items = value.values() if isinstance(value, dict) else value
        memo[key] = 1 + sum(_expanded(v, memo) for v in items)
    return memo[key]


def check_expansion(config: dict, budget: int = MAX_CONFIG_VALUES) -> None:
    """Refuse a config that YAML aliases blow up (nine levels of nine aliases are 387 million values, which
    every later check would walk) before anything walks it; the message names the largest top-level key."""
    memo: dict = {}
    sizes = {k: _expanded(v, memo) for k, v in config.items()}
    if sum(sizes.values()) > budget:
        key = max(sizes, key=sizes.get)
        raise ConfigError(f"invalid config at {key}: it expands to {sizes[key]:,} values (YAML aliases?), over "
                          f"the {budget:,} a study config may hold")


# -- sizes -------------------------------------------------------------------------------------------
def job_count(study, tracking: bool) -> int:
    """About how many jobs the study runs (the DAG Snakemake builds before the first job)."""
    total = 0
    for chain in study.chains:
        e = chain.experiment
        gens = e.generations + 1
        if e.block > 1:
            total += 2 * math.ceil(gens / e.block)  # a block job and its evaluation job
        else:
            total += gens * (3 + (e.curation is not None))
        total += bool(tracking)  # at most one tracking job per chain (they log groups of chains)
    return total


def _gb(x: float) -> str:
    return f"{x / GB:.3g} GB" if x >= 0.1 * GB else f"{x / 1024 ** 2:.3g} MB"


def check_sizes(study, limits: dict, tracking: dict):
    """Refuse a study whose jobs would not fit in memory, whose DAG is too large to build, or whose files would not
    fit on the disk; returns its :class:`ouroboros.costs.Estimate`."""
    limit = limits.get("job_memory_gb")
    limit_bytes = limit * GB if limit else machine_memory()
    source = "limits.job_memory_gb" if limit else "this machine's memory; raise it with limits.job_memory_gb"
    worst = None
    for chain in study.chains:
        b, how = job_bytes(chain)
        if worst is None or b > worst[0]:
            worst = (b, how, chain)
    if worst and worst[0] > limit_bytes:
        b, how, chain = worst
        raise ConfigError(
            f"invalid config at experiments ({chain.experiment.label}, regime {chain.regime.label}): a job would "
            f"hold about {_gb(b)} ({how}), over the limit of {_gb(limit_bytes)} ({source}); lower replicates, n "
            f"or generations (accumulated pools grow with them)")
    jobs = job_count(study, tracking["enabled"])
    if jobs > limits["jobs"]:
        raise ConfigError(
            f"invalid config at generations: the study would run about {jobs:,} jobs, over limits.jobs = "
            f"{limits['jobs']:,} (Snakemake builds every job before the first runs); use fewer generations, "
            f"seeds or sweep values, a larger block, or raise limits.jobs")
    est = costs.estimate(study, tracking)
    peak = est.peak_job
    if peak is not None and peak.memory > limit_bytes:
        raise ConfigError(
            f"invalid config at experiments ({peak.experiment}): its {peak.rule} job would hold about "
            f"{_gb(peak.memory)} ({peak.how}), over the limit of {_gb(limit_bytes)} ({source}); lower the batch, "
            "the model or n, or train an adapter")
    est.written = costs.written(study.name)
    need = est.disk_bytes - est.written
    free = costs.free_disk(paths_results(study.name))
    if need > free:
        raise ConfigError(
            f"invalid config at experiments: the study would write about {_gb(need)} more (results "
            f"{_gb(est.results_bytes)}, MLflow {_gb(est.mlflow_bytes)}), but the disk holding "
            f"{paths_results(study.name)} has {_gb(free)} free; free space, or store fewer weights "
            "(weights_dtype: bf16, keep: last)")
    return est


def paths_results(name: str) -> str:
    return paths.results(name)


# -- weights a chain does not keep ------------------------------------------------------------------
def check_kept_weights(study) -> None:
    """Refuse a study that would need weights its chains' ``keep`` already removed: a generation whose weights
    were removed (its ``model.pruned.json``) while a job that reads them has yet to run (its samples, metrics or
    curated data are missing, or the next generation's model where that starts from it: ``init: previous``);
    and ``keep`` in block mode, where a block's models are one file."""
    for chain in study.chains:
        e = chain.experiment
        keep = e.params.get("keep", "all")
        if keep == "all":
            continue
        if e.block != 1:
            raise ConfigError(f"invalid config at experiments ({e.label}).params.keep: keep {keep!r} removes the "
                              f"weights of single generations; a block of {e.block} keeps its models in one file "
                              "(use block: 1, or keep: all)")
        for g in range(1, e.generations + 1):
            if not Path(generation_files(chain, g).pruned).is_file():
                continue
            missing = [k for k, f in weight_readers(chain, g).items() if not Path(f).exists()]
            if missing:
                raise ConfigError(
                    f"invalid config at experiments ({e.label}).params.keep: generation {g} of {chain.job.path} no longer "
                    f"has its weights (keep: {keep}), but its {', '.join(missing)} must still be made from them; "
                    f"delete {generation_files(chain, g).dir} (it and every later generation of the chain are then "
                    "recomputed) or run with the keep setting the chain's later generations need")


# -- tracking ----------------------------------------------------------------------------------------
def check_tracking_folder(uri: str) -> None:
    """A SQLite database's folder must exist or be creatable, and be writable (nothing is created here)."""
    path = sqlite_path(uri)
    if path is None:
        return
    db = Path(path)
    if db.is_dir():
        raise ConfigError(f"invalid config at tracking.uri: {uri} names a folder, not a database file")
    folder = db.parent
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"invalid config at tracking.uri: cannot create the folder {folder} of the tracking "
                          f"database: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK) or (db.exists() and not os.access(db, os.W_OK)):
        raise ConfigError(f"invalid config at tracking.uri: {db if db.exists() else probe} is not writable, so "
                          f"the tracking database {uri} cannot be written")


# -- all of it ----------------------------------------------------------------------------------------
def prepare(config: dict, basedir, cwd=None, configfiles: Sequence = (), reread: bool = True,
            checked: bool = False) -> Prepared:
    """Check ``config`` in place (filling defaults) and build the study; every problem is one ConfigError
    line naming the key (and the file and line that set it).  ``reread``: read ``configfiles`` again with
    :func:`load_yaml`'s checks, which Snakemake's own reading of them lacks (a key written twice, an empty
    file).  ``checked``: ``config`` passed all this before (a job rebuilding the workflow's plan): only what
    builds the study runs, not the checks of what it would run (the VAE's loads its data set) or of sizes."""
    cwd = cwd or os.getcwd()
    if reread:
        own_claims(config, [load_yaml(f) for f in configfiles])
    try:
        check_expansion(config)
        schema = load_schema(Path(basedir) / "config" / "schema.yaml")
        validate_schema(config, schema)
        study = Study.from_config(config, schema=schema, validated=True, checked=checked)
        sweeps = {s["name"]: s for s in check_specs(study)}
        claims.check_study(claims.parse(config.get("claims")), study)
        tr = config["tracking"]
        try:
            uri = resolve_uri(tr["uri"], cwd)
        except TrackingError as exc:
            raise ConfigError(f"invalid config at tracking.uri: {exc}") from None
        est = None
        if not checked:
            if tr["enabled"]:
                check_tracking_folder(uri)
            est = check_sizes(study, config["limits"], tr)
            check_kept_weights(study)
    except ConfigError as exc:
        raise ConfigError(locate(str(exc), configfiles)) from None
    tracking = {"enabled": tr["enabled"], "uri": uri, "artifacts": resolve_artifacts(tr["artifacts"], uri, cwd),
                "every": tr["every"], "chains_per_job": tr["chains_per_job"],
                "parent_points": tr["parent_points"]}
    return Prepared(study, sweeps, tracking, est)


def own_claims(config: dict, loaded: Sequence[dict]) -> None:
    """A study's claims are the ones written with it: where a later config file names another study and no claims,
    the earlier file's (the default study's, which name its experiments) are dropped from ``config``."""
    named = [i for i, data in enumerate(loaded) if "study" in data]
    if named and not any("claims" in data for data in loaded[named[-1]:]):
        config["claims"] = ""


def check_files(files: Sequence, basedir, cwd=None) -> Prepared:
    """``ouroboros check``: the default config/config.yaml overridden by ``files`` in order, as
    ``snakemake --configfile FILE ...`` reads them, then :func:`prepare`."""
    files = [Path(basedir) / "config" / "config.yaml"] + [Path(f) for f in files]
    config: dict = {}
    for f in files:
        config = merge(config, load_yaml(f))
    yte = tuple(str(f) for f in files if uses_yte(f))
    return dataclasses.replace(prepare(config, basedir, cwd, files, reread=False), yte=yte)


def uses_yte(path) -> bool:
    """Whether a (readable) config file opts in to YTE templating."""
    try:
        return bool(re.search(r"^__use_yte__\s*:\s*true\s*(#.*)?$", Path(path).read_text(encoding="utf-8"), re.M))
    except (OSError, UnicodeDecodeError):
        return False
