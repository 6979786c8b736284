"""
Notifications: what happens to containers and instances, told as OpenStack
notifications carry it (``event_type``, ``publisher_id``, ``priority``,
``timestamp``, ``message_id``, ``payload``) to a JSON-lines log and to the
webhooks each project subscribes.

- ``events``: the event types, wildcards, envelopes and payloads;
- ``notifier``: ``Notifier``, the one ``emit`` every emitter calls, and the
  periodic ``compute.container.exists`` audit;
- ``sinks``: the sink interface and the JSON-lines log;
- ``webhook``: delivery to subscribed URLs (bounded queues, retries);
- ``subscriptions``: the projects' subscriptions, stored and cached.
"""
