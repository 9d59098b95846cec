"""The ``monitor:`` section of the SAGE config, offered to the core through ``sage_config_sections``.

::

    monitor:
      enabled: true        # serve the dashboard while this environment's jobs run
      host: 127.0.0.1      # 0.0.0.0 exposes it to the network
      port: 8765           # 0: any free port; a busy port falls back to a free one

In code: ``LocalEnvironment("name", config={"monitor": {"enabled": True}})``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_PORT", "MonitorSettings"]

DEFAULT_PORT = 8765


class MonitorSettings(BaseModel):
    """Whether a job serves the live dashboard, and where (the first monitored job of a process decides where)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    """Serve the dashboard for this environment's jobs."""
    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    """Port to bind; 0 takes any free port, and a busy one falls back to a free one."""
