"""
The control plane's side of its agents: the hub of agent links
(registration, heartbeats, calls), the registries of the execs and archive
transfers that run through them, and the agents' TLS and enrollment.
"""
