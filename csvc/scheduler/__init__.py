"""
Placement and the instance life cycle: where a container goes, instances
created for a project when none has room, instances found dead, instances
left empty removed.
"""
