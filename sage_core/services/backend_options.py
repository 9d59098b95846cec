"""A backend's ``options``: validated once, then given to its factory and, by one rule, to the fallbacks.

A backend that declares an options model (``BackendSpec.options``) has ``options:`` validated by
it: unknown keys, types and values are :class:`ConfigError`\\ s naming the key path
(``services.vdb.options.metric``) and the valid keys or values, and its factory receives the
validated values, every field with its default filled in, as keyword arguments. A backend without
a model (or a plain ``factory``) has its options checked against the factory's keyword parameters
and passed as given. ``device`` is never an option: it is the service's (or fallback's) own setting.

The fallback rule: a fallback with its own ``options`` uses them. One without gets the options the
primary was given (as the primary's model validated them, defaults not filled in), restricted to
the keys it declares (its model's fields, or its factory's keyword parameters; everything when the
factory takes ``**kwargs``), validated again by its own model. The keys it does not take are dropped;
:func:`tier_options` says which, and the service logs them once when it is registered.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from pydantic import ValidationError

from sage_core.errors import ConfigError
from sage_core.plugins.specs import BackendSpec
from sage_core.services.key_paths import describe_errors

if TYPE_CHECKING:
    from sage_core.plugins.manager import PluginManager
    from sage_core.services.config import ServiceConfig


@dataclass(frozen=True)
class TierOptions:
    """What one tier's factory receives as keyword options, and the primary's keys it does not take."""

    options: dict[str, Any]
    dropped: tuple[str, ...] = ()


def tier_options(path: str, config: ServiceConfig, plugins: PluginManager) -> list[TierOptions]:
    """The options of the service at ``path``, primary first, then each fallback by the fallback rule."""
    spec = plugins.backend(config.kind, config.backend) if config.backend is not None else None  # type: ignore[arg-type]
    primary = backend_options(f"{path}.options", spec, config.options) if spec is not None else dict(config.options)
    given = _given(spec, config.options)
    tiers = [TierOptions(primary)]
    for position, entry in enumerate(config.fallback):
        where = f"{path}.fallback[{position}].options"
        fallback = plugins.backend(config.kind, entry.backend) if entry.backend is not None else None  # type: ignore[arg-type]
        if entry.options is not None:
            options, dropped = entry.options, ()
        else:
            taken = _option_names(fallback, entry.factory)
            options = {k: v for k, v in given.items() if taken is None or k in taken}
            dropped = tuple(sorted(set(given) - set(options)))
        if fallback is not None:
            try:
                options = backend_options(where, fallback, options)
            except ConfigError as exc:
                if entry.options is not None:
                    raise
                msg = f"{exc}\n  (inherited from {path}.options; give {where} to set this fallback's own)"
                raise ConfigError(msg) from None
        tiers.append(TierOptions(dict(options), dropped))
    return tiers


def backend_options(path: str, spec: BackendSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword options ``spec.factory`` receives for ``options`` (found at ``path``); :class:`ConfigError` when invalid."""
    _refuse_device(path, options)
    if spec.options is None:
        _check_parameters(path, spec.name, spec.factory, options)
        return dict(options)
    try:
        return spec.options.model_validate(dict(options)).model_dump()
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, spec.options, path)) from None


def accepted_options(factory: Callable[..., Any]) -> set[str] | None:
    """Keyword options a factory accepts (``device`` excluded); ``None`` when it takes ``**kwargs``."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL and p.name != "device"}


def _given(spec: BackendSpec | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options a config set, as ``spec``'s model validated them (no defaults added): what a fallback inherits."""
    if spec is None or spec.options is None:
        return dict(options)
    return spec.options.model_validate(dict(options)).model_dump(exclude_unset=True)


def _option_names(spec: BackendSpec | None, factory: Callable[..., Any] | None) -> set[str] | None:
    """The option keys a backend takes: its model's fields, else its factory's keyword parameters; ``None`` for ``**kwargs``."""
    if spec is not None and spec.options is not None:
        return set(spec.options.model_fields)
    return accepted_options(spec.factory if spec is not None else factory)  # type: ignore[arg-type]


def _check_parameters(path: str, backend: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> None:
    accepted = accepted_options(factory)
    if accepted is None:
        return
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, sorted(accepted), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            msg = f"{path}.{key}: not an option of backend {backend!r}{hint}; valid options: {', '.join(sorted(accepted))}"
            raise ConfigError(msg)


def _refuse_device(path: str, options: Mapping[str, Any]) -> None:
    if "device" in options:
        owner = path.rpartition(".")[0]
        msg = f"{path}.device: device is not a backend option; set {owner}.device (auto, cpu, cuda or cuda:N)"
        raise ConfigError(msg)


__all__ = ["TierOptions", "accepted_options", "backend_options", "tier_options"]
