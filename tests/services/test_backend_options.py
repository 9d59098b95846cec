"""Backend options: a pydantic model per backend validates them, the factory and the fallbacks receive them."""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, Iterator, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from sage_core.errors import ConfigError, ServiceError
from sage_core.plugin import BackendSpec, ServiceKind, get_plugin_manager, hookimpl
from sage_core.plugins.manager import PluginManager
from sage_core.services.registry import ServiceRegistry


class IvfOptions(BaseModel):
    """Options of the test's ``ivf`` backend."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["l2", "ip"] = "l2"
    """How vectors compare."""
    nlist: int = Field(8, ge=1)
    """Clusters."""
    path: str | None = None
    """Where the table lives."""


class FlatOptions(BaseModel):
    """Options of the test's ``flat`` backend: a metric only."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["l2", "ip", "cosine"] = "cosine"
    """How vectors compare."""


class Table:
    """A backend that keeps the options it was created with."""

    def __init__(self, device: str = "cpu", **options: Any) -> None:
        self.options = options

    def settings(self) -> dict[str, Any]:
        """The options the factory received."""
        return self.options


def loose_table(device: str = "cpu", metric: str = "l2", path: str | None = None) -> Table:
    """A backend without an options model: its parameters are its options."""
    return Table(device, metric=metric, path=path)


def refusing_table(device: str = "cpu", **options: Any) -> Table:
    """A factory that finds its options wrong only when it runs."""
    raise ConfigError("metric 'ip' needs normalised vectors; set normalise: true")


def validating_table(device: str = "cpu", **options: Any) -> Table:
    """A factory that validates with its own model when it runs."""
    IvfOptions.model_validate(options)
    return Table(device, **options)


class TablePlugin:
    """Registers the kind ``table`` and its backends, for these tests only."""

    @hookimpl
    def sage_services(self, register: Callable[[ServiceKind], None]) -> None:
        """The ``table`` kind."""
        register(ServiceKind("table", Table, "a test kind"))

    @hookimpl
    def sage_backends(self, register: Callable[[BackendSpec], None]) -> None:
        """Backends with a model, without one, and ones whose factory raises configuration errors."""
        register(BackendSpec(kind="table", name="ivf", factory=Table, options=IvfOptions))
        register(BackendSpec(kind="table", name="flat", factory=Table, options=FlatOptions))
        register(BackendSpec(kind="table", name="loose", factory=loose_table))
        register(BackendSpec(kind="table", name="refusing", factory=refusing_table, options=IvfOptions))
        register(BackendSpec(kind="table", name="validating", factory=validating_table))


@pytest.fixture
def services() -> Iterator[ServiceRegistry]:
    """A service registry on a plugin manager holding the built-ins and :class:`TablePlugin`."""
    plugins = PluginManager(load_entry_points=False)
    plugins.register(TablePlugin(), name="table-plugin")
    registry = ServiceRegistry(plugins, job_name="options")
    yield registry
    registry.close()


def backend_options(services: ServiceRegistry, name: str) -> list[dict[str, Any]]:
    """What each tier's backend was created with, primary first."""
    return [tier.replicas[0].backend.settings() for tier in services.service(name).tiers]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"backend": "ivf", "options": {"nlsit": 3}},
         r"services\.t\.options\.nlsit: unknown key \(did you mean 'nlist'\?\); valid keys: metric, nlist, path"),
        ({"backend": "ivf", "options": {"metric": "cos"}}, r"services\.t\.options\.metric: Input should be 'l2' or 'ip'"),
        ({"backend": "ivf", "options": {"nlist": "many"}}, r"services\.t\.options\.nlist: Input should be a valid integer"),
        ({"backend": "ivf", "fallback": [{"backend": "ivf", "options": {"nlist": 0}}]},
         r"services\.t\.fallback\[0\]\.options\.nlist: Input should be greater than or equal to 1"),
        ({"backend": "ivf", "options": {"device": "cuda"}},
         r"services\.t\.options\.device: device is not a backend option; set services\.t\.device"),
        ({"backend": "loose", "options": {"metrc": "ip"}},
         r"services\.t\.options\.metrc: not an option of backend 'loose' \(did you mean 'metric'\?\); valid options: metric, path"),
        ({"backend": "ivf", "options": {"metric": "ip"}, "fallback": [{"backend": "flat"}, {"backend": "ivf"}]}, None),
    ],
)
def test_options_are_validated_by_the_backend_model_naming_the_key_path(
    services: ServiceRegistry, config: dict[str, Any], message: str | None
) -> None:
    if message is None:
        services.register("t", kind="table", **config)
        return
    with pytest.raises(ConfigError, match=message):
        services.register("t", kind="table", **config)


@pytest.mark.timeout(30)
def test_an_inherited_option_the_fallback_model_refuses_names_both_paths(services: ServiceRegistry) -> None:
    with pytest.raises(ConfigError, match=r"(?s)services\.t\.fallback\[0\]\.options\.metric: .*inherited from services\.t\.options"):
        services.register("t", kind="table", backend="flat", options={"metric": "cosine"}, fallback=["ivf"])


@pytest.mark.timeout(30)
def test_the_factory_receives_the_validated_values_with_defaults(services: ServiceRegistry) -> None:
    services.register("t", kind="table", backend="ivf", options={"nlist": "4"})
    services.start()
    assert backend_options(services, "t") == [{"metric": "l2", "nlist": 4, "path": None}]


@pytest.mark.timeout(30)
def test_a_fallback_inherits_the_options_it_takes_and_the_dropped_ones_are_logged_once(
    services: ServiceRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sage.services"):
        services.register(
            "t", kind="table", backend="ivf", options={"metric": "ip", "nlist": 4, "path": "/tmp/t"},
            fallback=["flat", "loose", {"backend": "flat", "options": {}}],
        )
        services.start()
    assert backend_options(services, "t") == [
        {"metric": "ip", "nlist": 4, "path": "/tmp/t"},
        {"metric": "ip"},
        {"metric": "ip", "path": "/tmp/t"},
        {"metric": "cosine"},
    ]
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped == [
        "service 't': fallback[0] 'flat' does not take option(s) nlist, path of services.t.options; they are dropped "
        "(give services.t.fallback[0].options to set its own)",
        "service 't': fallback[1] 'loose' does not take option(s) nlist of services.t.options; they are dropped "
        "(give services.t.fallback[1].options to set its own)",
    ]


@pytest.mark.timeout(30)
def test_only_the_options_the_config_set_are_inherited(services: ServiceRegistry, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sage.services"):
        services.register("t", kind="table", backend="ivf", options={"metric": "ip"}, fallback=["flat"])
        services.start()
    assert backend_options(services, "t")[1] == {"metric": "ip"}
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("backend", "options", "message"),
    [
        ("refusing", {"metric": "ip"},
         r"^service 't': services\.t\.options: metric 'ip' needs normalised vectors; set normalise: true$"),
        ("validating", {"nlist": 0},
         r"^service 't': invalid configuration:\n  services\.t\.options\.nlist: Input should be greater than or equal to 1"),
    ],
)
def test_a_config_error_from_the_factory_surfaces_as_config_error_with_the_key_path(
    services: ServiceRegistry, backend: str, options: dict[str, Any], message: str
) -> None:
    services.register("t", kind="table", backend=backend, options=options)
    with pytest.raises(ConfigError, match=message) as info:
        services.start()
    assert not isinstance(info.value, ServiceError)
    with pytest.raises(ConfigError, match=message):
        services.sync["t"].settings()


@pytest.mark.timeout(60)
def test_every_installed_options_model_agrees_with_its_factory_s_parameters() -> None:
    checked = []
    for spec in get_plugin_manager().backends():
        parameters = inspect.signature(spec.factory).parameters
        if spec.options is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            continue  # a factory taking **options has the model as its only list
        named = {name: p.default for name, p in parameters.items() if name != "device"}
        fields = spec.options.model_fields
        assert set(named) == set(fields), f"{spec.kind}/{spec.name}: parameters {sorted(named)}, model {sorted(fields)}"
        for name, field in fields.items():
            assert field.get_default(call_default_factory=True) == named[name], f"{spec.kind}/{spec.name}.{name}: defaults differ"
        checked.append(spec.name)
    assert {"numpy", "memory", "sqlite", "networkx", "hashing"} <= set(checked)


@pytest.mark.timeout(30)
def test_an_options_model_that_is_not_a_pydantic_model_is_refused_at_registration() -> None:
    with pytest.raises(TypeError, match=r"backend table/odd: options must be a pydantic BaseModel subclass"):
        BackendSpec(kind="table", name="odd", factory=Table, options=dict)  # type: ignore[arg-type]
