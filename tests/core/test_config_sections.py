"""Plugins' config sections (hook ``sage_config_sections``): validated by the plugin's model, read back from the job."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Callable, Iterator

import pytest
from pydantic import BaseModel, ConfigDict, Field

from sage_core import ConfigError, LocalEnvironment, SageConfig, load_config
from sage_core.plugin import get_plugin_manager, hookimpl
from sage_core.plugins.manager import PluginManager

pytestmark = pytest.mark.timeout(60)


class ProbeSettings(BaseModel):
    """The ``probe:`` section of the test plugin."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    level: int = Field(1, ge=0)


class ProbePlugin:
    """Offers the ``probe:`` section and records what its job-started hook reads from it."""

    def __init__(self) -> None:
        self.seen: list[ProbeSettings] = []

    @hookimpl
    def sage_config_sections(self, register: Callable[[str, type[BaseModel]], None]) -> None:
        """Offer ``probe:``."""
        register("probe", ProbeSettings)

    @hookimpl
    def sage_job_started(self, job: Any) -> None:
        """Read this plugin's section from the job's config."""
        self.seen.append(job.config.section("probe"))


class SectionPlugin:
    """Offers one section under a name chosen by the test."""

    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def sage_config_sections(self, register: Callable[[str, type[BaseModel]], None]) -> None:
        """Offer the section named ``self.name``."""
        register(self.name, ProbeSettings)


@pytest.fixture
def plugins() -> PluginManager:
    """A manager with the built-in plugins and the probe plugin, no entry points."""
    manager = PluginManager(load_entry_points=False)
    manager.register(ProbePlugin(), name="probe")
    return manager


@pytest.fixture
def probe() -> Iterator[ProbePlugin]:
    """The probe plugin registered in the process's plugin manager (its hooks see real jobs)."""
    manager = get_plugin_manager()
    plugin = ProbePlugin()
    manager.register(plugin, name="probe")
    yield plugin
    manager.unregister("probe")


def test_a_plugins_section_is_validated_by_its_model(plugins: PluginManager) -> None:
    config = load_config({"probe": {"enabled": True, "level": 3}}, plugin_manager=plugins)
    assert config.section("probe") == ProbeSettings(enabled=True, level=3)


def test_an_empty_section_takes_the_models_defaults(plugins: PluginManager) -> None:
    assert load_config({"probe": None}, plugin_manager=plugins).section("probe") == ProbeSettings()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"levle": 2}, r"probe\.levle: unknown key \(did you mean 'level'\?\); valid keys: enabled, level"),
        ({"level": -1}, r"probe\.level: Input should be greater than or equal to 0"),
    ],
)
def test_errors_in_a_section_name_the_key_path(plugins: PluginManager, section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"probe": section}, plugin_manager=plugins)


def test_an_unknown_section_lists_the_cores_and_the_plugins_sections(plugins: PluginManager) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"prob": {}}, plugin_manager=plugins)
    assert str(caught.value).startswith(
        "prob: unknown key (did you mean 'probe'?); valid keys: job, services, probe (from plugin probe); "
    )
    assert "needs that plugin installed" in str(caught.value)


def test_a_section_of_a_plugin_that_failed_to_load_says_so(plugins: PluginManager) -> None:
    class Broken:
        @hookimpl
        def sage_no_such_hook(self) -> None:
            """Not a SAGE hook: registration fails."""

    plugins.register(Broken(), name="broken")
    with pytest.raises(ConfigError, match=r"broken: no loaded plugin offers this config section; plugin 'broken' failed"):
        load_config({"broken": {}}, plugin_manager=plugins)


def test_a_section_of_an_installed_plugin_left_out_by_sage_load_plugins_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed = list(entry_points(group="sage"))
    if not installed:
        pytest.skip("no plugin installed through the sage entry point group")
    monkeypatch.setenv("SAGE_LOAD_PLUGINS", "")
    manager = PluginManager()
    name = installed[0].name
    with pytest.raises(ConfigError, match=rf"plugin '{name}' \(.+\) is installed but SAGE_LOAD_PLUGINS leaves it out"):
        load_config({name: {}}, plugin_manager=manager)


@pytest.mark.parametrize(
    ("names", "error"),
    [
        (["job"], "config section 'job' is the core's"),
        (["twice", "twice"], "config section 'twice' offered by both first and second"),
    ],
)
def test_a_section_cannot_take_a_cores_name_or_another_plugins(names: list[str], error: str) -> None:
    manager = PluginManager(load_entry_points=False)
    for plugin_name, section in zip(["first", "second"], names):
        manager.register(SectionPlugin(section), name=plugin_name)
    offered = manager.config_sections()
    failed = {info.name: info.error for info in manager.plugins() if info.error}
    assert error in " ".join(failed.values()), failed
    assert "job" not in offered


def test_the_job_carries_its_config_and_a_hook_reads_its_section(probe: ProbePlugin) -> None:
    with LocalEnvironment("sections", config={"probe": {"enabled": True, "level": 2}}) as env:
        env.from_batch(range(3)).sink(lambda n: None)
        job = env.submit()
    assert job.config is env.config
    assert probe.seen == [ProbeSettings(enabled=True, level=2)]


def test_an_absent_section_reads_as_the_defaults_and_a_change_in_code_sticks(probe: ProbePlugin) -> None:
    config = SageConfig()
    config.section("probe").level = 5
    assert config.section("probe") == ProbeSettings(level=5)
    with pytest.raises(ConfigError, match=r"nope: unknown key; valid keys: job, services, .*probe \(from plugin probe\)"):
        config.section("nope")
