"""SAGE: a dataflow framework for LLM and RAG pipelines that uses GPUs through long-lived services.

The pipeline user's API: environments, streams, function classes, jobs, config, the errors a
pipeline meets and what service calls return. Plugin authors use :mod:`sage_core.plugin`; every
error lives in :mod:`sage_core.errors`; the contract test kit is :mod:`sage_core.testing`. Names
load lazily so that ``import sage_core`` stays cheap (the CLI, plugin discovery).
"""

from __future__ import annotations

from sage_core.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # dataflow API
    "LocalEnvironment": "sage_core.api.environment",
    "RemoteEnvironment": "sage_core.api.remote_environment",
    "DataStream": "sage_core.api.datastream",
    "ConnectedStreams": "sage_core.api.datastream",
    "BaseFunction": "sage_core.api.functions",
    "MapFunction": "sage_core.api.functions",
    "FilterFunction": "sage_core.api.functions",
    "FlatMapFunction": "sage_core.api.functions",
    "KeyByFunction": "sage_core.api.functions",
    "SinkFunction": "sage_core.api.functions",
    "SourceFunction": "sage_core.api.functions",
    "BatchFunction": "sage_core.api.functions",
    "CoMapFunction": "sage_core.api.functions",
    "JoinFunction": "sage_core.api.functions",
    "RuntimeContext": "sage_core.runtime.context",
    "JobHandle": "sage_core.runtime.job",
    "JobFailed": "sage_core.errors",
    "OpenFailed": "sage_core.errors",
    "CloseFailed": "sage_core.errors",
    "Collected": "sage_core.api.collect",
    "DeadLetter": "sage_core.runtime.records",
    "PipelineError": "sage_core.errors",
    # serving (the web front end is the sage-serve plugin)
    "ChatEndpoint": "sage_core.serving",
    "ChatRequest": "sage_core.serving",
    "Answer": "sage_core.serving",
    "ServingError": "sage_core.serving",
    "when_started": "sage_core.serving",
    # config
    "SageConfig": "sage_core.config",
    "load_config": "sage_core.config",
    # errors a pipeline meets (every error: sage_core.errors)
    "ConfigError": "sage_core.errors",
    "ServiceError": "sage_core.errors",
    "ServiceTimeout": "sage_core.errors",
    # what service calls return
    "Hit": "sage_core.services.contracts",
    "Completion": "sage_core.services.contracts",
    "SamplingParams": "sage_core.services.contracts",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
__all__ += ["__version__"]
