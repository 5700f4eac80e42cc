"""The pytest side of the simulated hosts (:mod:`bench.netns`): ``count`` namespaces for one test,
removed at its end however it ends; ``pytest.skip`` with the reason where they cannot be made."""

from __future__ import annotations

import pytest

from bench.netns import Hosts, NetnsUnavailable, build, teardown


def hosts_fixture(request, count: int) -> Hosts:
    try:
        hosts = build(count)
    except NetnsUnavailable as exc:
        pytest.skip(str(exc))
    request.addfinalizer(lambda: teardown(hosts))
    return hosts
