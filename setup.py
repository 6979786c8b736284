from setuptools import find_packages, setup

setup(
    name="csvc",
    version="0.1.0",
    description="A containers service for OpenStack-style clouds, on Twisted",
    packages=find_packages(include=["csvc", "csvc.*"]) + ["twisted.plugins"],
    package_data={
        "csvc.store": ["alembic.ini", "migrations/*.py", "migrations/versions/*.py"],
        "csvc.api": ["static/*", "static/xterm/*"],
    },
    include_package_data=True,
    python_requires=">=3.11",
    install_requires=[
        # csvc/relay/hijack.py takes connections from twisted.web's HTTPChannel
        # through private attributes: pinned to the release it is tested on.
        "twisted[tls]==26.10.0",
        "autobahn>=24.4",
        "txaio",
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
    ],
    extras_require={
        # websocket-client: a plain synchronous WebSocket client for the
        # attach tests (the docker SDK uses it for attach/ws too).
        # pexpect: the docker CLI under a pseudo-terminal (docker run -it).
        "test": ["pytest", "pytest-twisted", "hypothesis", "websocket-client", "pexpect"],
    },
    entry_points={
        "console_scripts": ["csvc-manage = csvc.manage:main"],
    },
)
