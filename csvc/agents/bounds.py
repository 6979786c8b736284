"""
A bound per project on things remembered for a while (execs created and
not started, execs the Docker API shows), the oldest dropped first, so
that a project filling its share never drops another's.
"""

from collections import OrderedDict


class NewestPerProject:
    """
    Keys, each of a project, in the order they were added.  ``add`` keeps
    at most ``per_project`` of each project and ``total`` in all, and
    returns the keys it dropped: the project's oldest beyond its share;
    beyond the total, the oldest of the project holding the most (the one
    adding, on a tie).  The limits are given to each ``add`` (their owners
    may change them).
    """

    def __init__(self):
        #: project -> its keys, oldest first
        self._projects = {}
        #: key -> its project
        self._project_of = {}

    def __len__(self):
        return len(self._project_of)

    def __contains__(self, key):
        return key in self._project_of

    def discard(self, key):
        if key not in self._project_of:
            return
        project = self._project_of.pop(key)
        keys = self._projects[project]
        del keys[key]
        if not keys:
            del self._projects[project]

    def add(self, key, project, per_project, total):
        self.discard(key)
        self._project_of[key] = project
        own = self._projects.setdefault(project, OrderedDict())
        own[key] = None
        dropped = []
        while len(own) > per_project:
            dropped.append(self._drop_oldest(project))
        while len(self._project_of) > total:
            most = max(len(keys) for keys in self._projects.values())
            fullest = project if len(self._projects.get(project, ())) == most else next(
                p for p, keys in self._projects.items() if len(keys) == most)
            dropped.append(self._drop_oldest(fullest))
        return dropped

    def _drop_oldest(self, project):
        key = next(iter(self._projects[project]))
        self.discard(key)
        return key
