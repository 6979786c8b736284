from setuptools import find_packages, setup

setup(
    name="csvc",
    version="0.1.0",
    description="A containers service for OpenStack-style clouds, on Twisted",
    packages=find_packages(include=["csvc", "csvc.*"]) + ["twisted.plugins"],
    package_data={
        "csvc.store": ["alembic.ini", "migrations/*.py", "migrations/versions/*.py"],
        "csvc.api": ["static/*", "static/xterm/*", "engine_schema.json"],
    },
    include_package_data=True,
    python_requires=">=3.11",
    install_requires=[
        # Public APIs only, but on the fast path (csvc/fastpath/, on by
        # --fast-path auto only with the releases in csvc.fastpath.TESTED).
        # The oldest releases the unit and API suites pass with: Twisted
        # 25.5.0 (before it, the tests' MemoryReactorClock has no
        # nameResolver; csvc itself ran with 24.7.0), autobahn 24.4.2, txaio
        # 23.1.1.
        "twisted[tls]>=25.5.0",
        "autobahn>=24.4.2",
        "txaio>=23.1.1",
        "klein>=24.8",
        "treq",
        "sqlalchemy>=2.0",
        "alembic",
        "openstacksdk",
        "docker>=7",
        # Request validation: a well-kept implementation of JSON Schema.
        "jsonschema>=4",
        # PostgreSQL driver for the scale-out store (--database postgresql://...).
        "psycopg[binary]",
        # Tenants' regular expressions (Docker's name filter) in linear time:
        # RE2 is Go's syntax, as Docker reads them, without backtracking.
        "google-re2>=1.1",
    ],
    extras_require={
        # websocket-client: a plain synchronous WebSocket client for the
        # attach tests (the docker SDK uses it for attach/ws too).
        # pexpect: the docker CLI under a pseudo-terminal (docker run -it).
        # schemathesis: property-based tests of the native API against its own
        # OpenAPI document (tests/integration/test_schemathesis.py); 4.32 is
        # tested with pytest 9.2 and hypothesis 6.170 (its lazy from_fixture
        # loader is not: the test loads the document with from_dict).
        # openapi-spec-validator: the document is valid OpenAPI 3.1.
        "test": [
            "pytest",
            "pytest-twisted",
            "hypothesis",
            "websocket-client",
            "pexpect",
            "schemathesis>=4.32,<5",
            "openapi-spec-validator>=0.7",
        ],
    },
    entry_points={
        "console_scripts": ["csvc-manage = csvc.manage:main"],
    },
)
