"""Settings schemas shared by every registry (targets, regimes, curation selectors and scorers).

Each registered kind declares its settings as a JSON schema (draft 2020-12)
whose properties carry defaults and descriptions; :func:`fill` checks a
mapping against it and fills the defaults, raising :class:`ConfigError` with
a message that names the key and, for an unknown key, the allowed ones.
"""
from __future__ import annotations

import copy
import functools
import importlib
import math
from typing import Any



class ConfigError(ValueError):
    """The study configuration is invalid; the message names the key."""


#: the stages of a chain's computation, in the order its jobs run them: the real data and reference material
#: (``data``), training (``fit``), drawing and curating synthetic data (``sample``), metrics (``evaluate``).
#: Every setting declares (``"stage"`` in its schema) the first stage whose results it changes; a job carries as
#: its rule's params the settings of its own stage and of the stages before it, so a changed setting re-runs the
#: jobs of its stage and what reads their outputs, nothing upstream.
STAGES = ("data", "fit", "sample", "evaluate")
#: the stage of a setting no result depends on (threads, device, logging): a change re-runs nothing
NO_STAGE = "none"
#: the stage of a key whose entries declare their own (an experiment's ``params``, the ``experiments`` list)
EACH = "each"


def settings_schema(properties: dict, required: tuple[str, ...] = (), stage: str | None = None) -> dict:
    """An object of exactly these settings (each with its default, description and stage); ``stage``: the stage of
    every property that does not name its own (a regime's settings all shape the training set: ``fit``)."""
    if stage is not None:
        properties = {k: ({"stage": stage, **v} if isinstance(v, dict) else v) for k, v in properties.items()}
    schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def stage_of(schema: dict, key: str) -> str:
    """The stage a setting of ``schema`` declares (a KeyError for an unknown setting; ``data``, the most cautious,
    for one that declares none: a new kind's forgotten declaration re-runs too much, never too little)."""
    return schema["properties"][key].get("stage", STAGES[0])


def undeclared_stages(schema: dict, where: str = "") -> list[str]:
    """The properties of ``schema`` that declare no valid stage (what the tests refuse)."""
    allowed = (*STAGES, NO_STAGE, EACH)
    return [f"{where}{k}" for k, v in schema.get("properties", {}).items()
            if not isinstance(v, dict) or v.get("stage") not in allowed]


def by_stage(schema: dict, settings: dict) -> dict[str, dict]:
    """``settings`` split by the stage each declares: {stage: {key: value}} for every stage of :data:`STAGES`
    (settings of :data:`NO_STAGE` are left out: no result depends on them)."""
    out: dict[str, dict] = {s: {} for s in STAGES}
    for k, v in settings.items():
        stage = stage_of(schema, k) if k in schema.get("properties", {}) else STAGES[0]
        if stage != NO_STAGE:
            out[stage][k] = v
    return out


def results_settings(schema: dict, settings: dict) -> dict:
    """The settings some result depends on (all but those of :data:`NO_STAGE`), in their order."""
    props = schema.get("properties", {})
    return {k: v for k, v in settings.items() if k not in props or stage_of(schema, k) != NO_STAGE}


def _is_integer(checker, instance) -> bool:
    """Only ints are integers: JSON Schema's 3.0 would pass, and then name a folder ``gens0-3.0``."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _full_pattern(pattern: str) -> str:
    """A pattern's closing ``$`` as "the end of the string": Python's ``$`` also matches before a final
    newline, so ``"nl\\n"`` would pass ``^[a-z]+$`` (and name a folder)."""
    return pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern


def _validator(schema: dict):
    """A draft 2020-12 validator that also fills in defaults, counts only ints as integers, and anchors
    patterns at the very end of the string."""
    return _validator_class()(schema)


@functools.cache
def _validator_class():
    """The validator class, built once per process (building it compiles some forty ``attrs`` methods: 0.7 ms,
    3 s for the four checks of each of a 1,000-point sweep)."""
    import jsonschema  # 30 ms and some forty modules, which a job that validates nothing does not pay

    base = jsonschema.Draft202012Validator
    props = base.VALIDATORS["properties"]
    pattern = base.VALIDATORS["pattern"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from props(validator, properties, instance, schema)

    def full_pattern(validator, patrn, instance, schema):
        yield from pattern(validator, _full_pattern(patrn), instance, schema)

    types = base.TYPE_CHECKER.redefine("integer", _is_integer)
    return jsonschema.validators.extend(base, {"properties": set_defaults, "pattern": full_pattern},
                                        type_checker=types)


def where(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def check_finite(instance: Any, at: str) -> None:
    """NaN and infinities are never a valid setting (YAML reads ``.nan`` and ``.inf`` as floats)."""
    if isinstance(instance, float) and not math.isfinite(instance):
        raise ConfigError(f"invalid config at {at}: {instance} is not a finite number")
    if isinstance(instance, str) and "\0" in instance:  # no path, URI or name holds one (open() refuses it)
        raise ConfigError(f"invalid config at {at}: the value holds a NUL character")
    if isinstance(instance, dict):
        for k, v in instance.items():
            check_finite(v, f"{at}.{k}" if at else str(k))
    elif isinstance(instance, list):
        for i, v in enumerate(instance):
            check_finite(v, f"{at}[{i}]")


def check(schema: dict, instance: Any, at: str) -> None:
    """Validate ``instance`` in place (filling defaults); the first problem is a ConfigError naming its key."""
    check_finite(instance, at)
    errors = sorted(_validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    e = errors[0]
    loc = where(list(e.absolute_path))
    full = (at or loc) if loc == "(top level)" else (f"{at}.{loc}" if at else loc)
    hint = ""
    if "enum" in e.schema:
        hint = f"; allowed values: {', '.join(map(str, e.schema['enum']))}"
    elif e.validator == "additionalProperties" and isinstance(e.schema.get("properties"), dict):
        allowed = sorted(e.schema["properties"])
        unknown = sorted(k for k in e.instance if k not in e.schema["properties"])
        if len(unknown) == 1:  # name the key itself, so the message points at its line
            full = f"{full}.{unknown[0]}" if full != "(top level)" else str(unknown[0])
            raise ConfigError(f"invalid config at {full}: unknown key {unknown[0]!r}; allowed keys: "
                              f"{', '.join(allowed) or '(none: this kind has no settings)'}")
        hint = f"; allowed keys: {', '.join(allowed) or '(none: this kind has no settings)'}"
    raise ConfigError(f"invalid config at {full}: {e.message}{hint}")


def fill(schema: dict, settings: dict | None, at: str) -> dict:
    """A checked copy of ``settings`` with every default filled in."""
    out = copy.deepcopy(dict(settings or {}))
    check(schema, out, at)
    return out


def applicable(schema: dict, settings: dict) -> dict:
    """The settings that apply given the others: a property may say ``"applies": {"corpus": ["files"]}`` (it
    is used only when ``corpus`` is ``files``); what the settings table lists for a row."""
    props = schema.get("properties", {})
    out = {}
    for k, v in settings.items():
        rule = props.get(k, {}).get("applies") if isinstance(props.get(k), dict) else None
        if rule and any(settings.get(other) not in allowed for other, allowed in rule.items()):
            continue
        out[k] = v
    return out


def defaults(schema: dict) -> dict:
    return {k: copy.deepcopy(v["default"]) for k, v in schema.get("properties", {}).items() if "default" in v}


def load_registered(registry: dict[str, str], kind: str, what: str):
    """The class registered as ``kind`` ("module:Class", imported on first use, so registries stay cheap)."""
    try:
        module, cls = registry[kind].split(":")
    except (KeyError, TypeError):
        raise ConfigError(f"unknown {what} {kind!r}; allowed values: {', '.join(registry)}") from None
    return getattr(importlib.import_module(module), cls)
