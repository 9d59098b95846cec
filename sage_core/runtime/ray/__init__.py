"""The Ray runtime: the physical graph's tasks and the services' replicas as Ray actors.

Use it through :class:`sage_core.RemoteEnvironment`; nothing here is public API. Ray is imported
only by the modules that need it (``pip install "sage-core[ray]"``).

Layout: :mod:`.cluster` (connecting), :mod:`.runtime` (the driver side of a job),
:mod:`.task_actor` and :mod:`.task_loop` (one task), :mod:`.channels` (pushes between tasks),
:mod:`.services` and :mod:`.service_actors` (services), :mod:`.replies` and :mod:`.portable`
(answers and exceptions across processes).

Delivery guarantee: **at-least-once**, per record, across actor crashes.

* Every batch a task pushes downstream stays unacknowledged until the receiving task has
  processed it and every batch *that* produced has been acknowledged in turn, so an
  acknowledged batch has been consumed by the sinks. A sender keeps at most ``window``
  unacknowledged pushes per receiver (the backpressure).
* Task and replica actors are created with ``max_restarts`` and ``max_task_retries=-1``: when one
  dies (a crash, ``ray.kill(actor, no_restart=False)``, a lost node) Ray restarts it from its
  constructor arguments and re-sends every call it had not answered, so every unacknowledged
  batch is processed again. Nothing acknowledged is lost, nothing unacknowledged is dropped.
* The price of a failure is duplicates: records the crashed task had already passed downstream
  are passed again, and a restarted source task starts its input from the beginning. Sinks
  that must not see a record twice should be idempotent (keyed by a record id).
* Order: a channel delivers batches in the order they were sent, until a task on it restarts;
  records re-sent after a restart may arrive out of order.
* State is not checkpointed: a restarted actor starts empty. The guarantee covers records, not
  state built from them: a restarted join has forgotten the records it held (pairs with them
  are missed), a function's counters restart from zero, a restarted replica of a store holds
  no data. The restarted task's figures in ``job.summary()`` count from its restart.
* A job fails (as locally) when a record fails under the ``fail`` policy or an actor runs out of
  restarts; records of a failed job are not retried.
"""
