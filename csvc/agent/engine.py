"""
What the agent asks of its container engine: the interface the Docker and
LXC engines (``docker_engine.py``, ``lxc_engine.py``) and the benchmarks'
synthetic engine (``bench/_synthetic.py``) declare.  The agent's core, its
link, execs, transfers and event stream call nothing else of an engine.

Containers are addressed by csvc uuid unless a parameter says
``engine_id`` (the engine's own id, from ``create`` or a summary).  Every
call but ``start`` and ``stop`` fires a Deferred; failures are the
engine errors of ``csvc.wire.commands`` (``EngineError``,
``NoSuchContainer``, ``Refused``...), which the link hands to the control
plane as declared AMP errors.

A container's summary, as ``inspect`` and ``inventory`` give it, is a dict
with ``uuid``, ``instance``, ``engine_id``, ``state``, ``running``,
``exit_code``, ``started_at``, ``finished_at``, ``tty`` and ``auto_remove``.
"""

from zope.interface import Attribute, Interface


class IEngine(Interface):
    name = Attribute("The engine's name as the agent registers it (``docker``, ``lxc``).")

    def start():
        """
        Start the engine driver's own resources (its thread pool).
        """

    def stop():
        """
        Release them (the agent stops).
        """

    # -- control -----------------------------------------------------------

    def create(spec):
        """
        Create a container from a csvc spec (built by the control plane,
        checked again by the agent's wall); fires with the engine's id.
        """

    def start_container(uuid):
        """
        Start the container; fires once the engine started it.
        """

    def stop_container(uuid, timeout):
        """
        SIGTERM, SIGKILL after ``timeout`` seconds; fires once it exited.
        """

    def kill_container(uuid, signal):
        """
        Send ``signal`` (a name or number) to the container's process.
        """

    def remove_container(uuid, force, volumes=False):
        """
        Remove the container (``force``: even running); with ``volumes``,
        its anonymous volumes too.
        """

    def pause_container(uuid, paused):
        """
        Pause (``paused`` true) or unpause the container.
        """

    def paused(uuid):
        """
        Fires with whether the container is paused.
        """

    def top(uuid, ps_args=None):
        """
        Fires with the container's processes as the engine's ``top``.
        """

    def stats(uuid):
        """
        Fires with one sample of the container's resource usage.
        """

    def update(uuid, update):
        """
        Change the container's resources (a Docker update body csvc built);
        fires with the engine's warnings.
        """

    def sizes(project_id):
        """
        Fires with ``{uuid: [SizeRw, SizeRootFs]}`` of the project's
        containers on this engine.
        """

    def ports(uuid):
        """
        Fires with the container's published ports.
        """

    def inspect(uuid):
        """
        Fires with the container's summary.
        """

    def health(uuid):
        """
        Fires with the container's health (None without a healthcheck).
        """

    def facts():
        """
        Fires with what the engine says of itself (``NCPU``, ``MemTotal``...).
        """

    def inventory():
        """
        Fires with the summaries of every csvc container on the engine.
        """

    # -- images ------------------------------------------------------------

    def images():
        """
        Fires with the images on the engine.
        """

    def inspect_image(name):
        """
        Fires with the image's inspect document.
        """

    def pull_image(image):
        """
        Pull the image; fires with its id.
        """

    # -- streams -----------------------------------------------------------

    def attach(engine_id, protocol, stdin=False, output=True):
        """
        Attach ``protocol`` to the container's streams: its output with
        ``output``, its stdin (what the protocol writes) with ``stdin``.
        Fires once attached.
        """

    def follow_logs(engine_id, protocol):
        """
        Stream the container's whole log into ``protocol``, following while
        it runs.
        """

    def resize(uuid, height, width):
        """
        Resize the container's TTY.
        """

    def follow_events(protocol):
        """
        Stream the engine's container events (JSON lines) into ``protocol``.
        """

    # -- exec --------------------------------------------------------------

    def exec_create(uuid, spec):
        """
        Create an exec in the container; fires with the engine's exec id.
        """

    def exec_start(exec_id, tty, protocol):
        """
        Start the exec on a stream given to ``protocol``.
        """

    def exec_inspect(exec_id):
        """
        Fires with ``{"running": bool, "exit_code": int or None}``.
        """

    def exec_resize(exec_id, height, width):
        """
        Resize the exec's TTY.
        """

    # -- transfers ---------------------------------------------------------

    def download(uuid, kind, options, protocol):
        """
        Stream a download (an archive, an export...) into ``protocol``;
        fires with its info once the engine answered.
        """

    def archive_stat(uuid, path):
        """
        Fires with the engine's path stat of ``path`` in the container.
        """

    def upload(uuid, options, body):
        """
        Extract ``body`` (an ``IBodyProducer`` of a tar) at
        ``options["path"]``; fires once the engine took it.
        """

    # -- volumes -----------------------------------------------------------

    def list_volumes(prefix):
        """
        Fires with the volumes whose names begin with ``prefix``.
        """

    def create_volume(name, labels):
        """
        Create a volume; fires with it.
        """

    def inspect_volume(name):
        """
        Fires with the volume.
        """

    def remove_volume(name, force):
        """
        Remove the volume.
        """

    # -- networks ----------------------------------------------------------

    def list_networks(prefix, names):
        """
        Fires with the networks whose names begin with ``prefix`` and those
        named in ``names``.
        """

    def create_network(name, options):
        """
        Create a network; fires with its inspect document.
        """

    def inspect_network(name):
        """
        Fires with the network's inspect document.
        """

    def remove_network(name):
        """
        Remove the network.
        """

    def connect_network(uuid, name, aliases):
        """
        Connect the container to the network.
        """

    def disconnect_network(uuid, name, force):
        """
        Disconnect the container from the network.
        """
