"""
The agent's end of the AMP link: boxes in, calls on ``AgentCore`` out.
"""

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols import amp

from csvc.wire import commands
from csvc.agent.core import Enrolled
from csvc.fastpath.boxes import FastBoxes


class AgentProtocol(FastBoxes, amp.AMP):
    log = Logger()
    fast_commands = commands.STREAM_COMMANDS

    def __init__(self, core, clock):
        super().__init__()
        self._core = core
        self._clock = clock
        self._heartbeat = None

    def connectionMade(self):
        super().connectionMade()
        # Small boxes (stdin echoes, answers) must not wait for a delayed ACK.
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)
        d = self._core.connected(self)
        d.addCallbacks(self._registered, self._refused)

    def _registered(self, result):
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = self._clock
        self._heartbeat.start(result["heartbeat_interval"], now=False)

    def _beat(self):
        self._core.renew_if_due()
        d = self.callRemote(commands.Heartbeat)
        d.addErrback(lambda f: self.log.debug("heartbeat failed: {why}", why=f.getErrorMessage()))
        return None

    def _refused(self, failure):
        if failure.check(Enrolled):
            # Not a refusal: connect again, presenting the new certificate.
            pass
        elif failure.check(commands.NotEnrolled):
            self.log.error("the control plane refused this agent's enrollment token: {why}",
                           why=failure.getErrorMessage())
        elif failure.check(commands.CertificateRefused):
            self.log.error("the control plane refused this agent's certificate: {why}", why=failure.getErrorMessage())
        elif failure.check(commands.ProtocolMismatch):
            self.log.error("the control plane refused this agent: {why}", why=failure.getErrorMessage())
        else:
            self.log.failure("registration failed", failure)
        self.transport.loseConnection()

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        self._core.disconnected(self)

    @commands.CreateContainer.responder
    def create(self, spec):
        return self._core.create(spec).addCallback(lambda engine_id: {"engine_id": engine_id})

    @commands.StartContainer.responder
    def start(self, uuid):
        return self._core.start(uuid).addCallback(lambda _: {})

    @commands.StopContainer.responder
    def stop(self, uuid, timeout):
        return self._core.stop(uuid, timeout).addCallback(lambda _: {})

    @commands.KillContainer.responder
    def kill(self, uuid, signal):
        return self._core.kill(uuid, signal).addCallback(lambda _: {})

    @commands.RemoveContainer.responder
    def remove(self, uuid, force, volumes=False):
        return self._core.remove(uuid, force, bool(volumes)).addCallback(lambda _: {})

    @commands.ResumeOutput.responder
    def resume(self, uuid, seq, cursor):
        self._core.resume(uuid, seq, cursor)
        return {}

    @commands.Input.responder
    def input(self, uuid, data):
        return self._core.write_stdin(uuid, data).addCallback(lambda _: {})

    @commands.CloseInput.responder
    def close_input(self, uuid):
        return self._core.close_stdin(uuid).addCallback(lambda _: {})

    @commands.Resize.responder
    def resize(self, uuid, height, width):
        return self._core.resize(uuid, height, width).addCallback(lambda _: {})

    # -- exec --------------------------------------------------------------

    @commands.ExecCreate.responder
    def exec_create(self, uuid, spec):
        return self._core.execs.create(uuid, spec).addCallback(lambda exec_id: {"exec_id": exec_id})

    @commands.ExecStart.responder
    def exec_start(self, exec_id, tty):
        return self._core.execs.start(exec_id, tty).addCallback(lambda _: {})

    @commands.ExecInput.responder
    def exec_input(self, exec_id, data):
        return self._core.execs.write(exec_id, data).addCallback(lambda _: {})

    @commands.ExecCloseInput.responder
    def exec_close_input(self, exec_id):
        return self._core.execs.close_input(exec_id).addCallback(lambda _: {})

    @commands.ExecResize.responder
    def exec_resize(self, exec_id, height, width):
        return self._core.execs.resize(exec_id, height, width).addCallback(lambda _: {})

    @commands.ListImages.responder
    def list_images(self):
        return self._core.engine.images().addCallback(lambda images: {"images": images})

    @commands.ContainerHealth.responder
    def container_health(self, uuid):
        return self._core.engine.health(uuid).addCallback(lambda health: {"health": health})

    @commands.InspectImage.responder
    def inspect_image(self, name):
        return self._core.engine.inspect_image(name).addCallback(lambda image: {"image": image})

    @commands.PullImage.responder
    def pull_image(self, image):
        return self._core.engine.pull_image(image).addCallback(lambda image_id: {"id": image_id})

    @commands.PauseContainer.responder
    def pause(self, uuid, paused):
        return self._core.engine.pause_container(uuid, paused).addCallback(lambda _: {})

    @commands.ContainerPaused.responder
    def container_paused(self, uuid):
        return self._core.engine.paused(uuid).addCallback(lambda paused: {"paused": paused})

    @commands.ContainerTop.responder
    def container_top(self, uuid, ps_args):
        return self._core.engine.top(uuid, ps_args).addCallback(lambda top: {"top": top})

    @commands.ContainerStats.responder
    def container_stats(self, uuid):
        return self._core.engine.stats(uuid).addCallback(lambda stats: {"stats": stats})

    # -- volumes -----------------------------------------------------------

    @commands.ListVolumes.responder
    def list_volumes(self, prefix):
        return self._core.engine.list_volumes(prefix).addCallback(lambda volumes: {"volumes": volumes})

    @commands.CreateVolume.responder
    def create_volume(self, name, labels):
        return self._core.engine.create_volume(name, labels).addCallback(lambda volume: {"volume": volume})

    @commands.InspectVolume.responder
    def inspect_volume(self, name):
        return self._core.engine.inspect_volume(name).addCallback(lambda volume: {"volume": volume})

    @commands.RemoveVolume.responder
    def remove_volume(self, name, force):
        return self._core.engine.remove_volume(name, force).addCallback(lambda _: {})

    # -- networks ----------------------------------------------------------

    @commands.ListNetworks.responder
    def list_networks(self, prefix, names):
        return self._core.engine.list_networks(prefix, names).addCallback(lambda networks: {"networks": networks})

    @commands.CreateNetwork.responder
    def create_network(self, name, options):
        return self._core.engine.create_network(name, options).addCallback(lambda network: {"network": network})

    @commands.InspectNetwork.responder
    def inspect_network(self, name):
        return self._core.engine.inspect_network(name).addCallback(lambda network: {"network": network})

    @commands.RemoveNetwork.responder
    def remove_network(self, name):
        return self._core.engine.remove_network(name).addCallback(lambda _: {})

    @commands.ConnectNetwork.responder
    def connect_network(self, uuid, name, aliases):
        return self._core.engine.connect_network(uuid, name, aliases).addCallback(lambda _: {})

    @commands.DisconnectNetwork.responder
    def disconnect_network(self, uuid, name, force):
        return self._core.engine.disconnect_network(uuid, name, force).addCallback(lambda _: {})

    # -- update, ports -----------------------------------------------------

    @commands.UpdateContainer.responder
    def update(self, uuid, update):
        return self._core.engine.update(uuid, update).addCallback(lambda warnings: {"warnings": warnings})

    @commands.ContainerSizes.responder
    def container_sizes(self, project_id):
        return self._core.engine.sizes(project_id).addCallback(lambda sizes: {"sizes": sizes})

    @commands.ContainerPorts.responder
    def container_ports(self, uuid):
        return self._core.engine.ports(uuid).addCallback(lambda ports: {"ports": ports})

    # -- transfers ---------------------------------------------------------

    @commands.OpenDownload.responder
    def open_download(self, transfer_id, uuid, kind, options):
        d = self._core.downloads.open(transfer_id, uuid, kind, options)
        return d.addCallback(lambda info: {"info": info})

    @commands.CancelDownload.responder
    def cancel_download(self, transfer_id):
        self._core.downloads.cancel(transfer_id)
        return {}

    @commands.ArchiveStat.responder
    def archive_stat(self, uuid, path):
        return self._core.engine.archive_stat(uuid, path).addCallback(lambda stat: {"path_stat": stat})

    @commands.OpenUpload.responder
    def open_upload(self, transfer_id, uuid, length, options):
        return self._core.uploads.open(transfer_id, uuid, length, options).addCallback(lambda _: {})

    @commands.UploadChunk.responder
    def upload_chunk(self, transfer_id, data):
        return self._core.uploads.write(transfer_id, data).addCallback(lambda _: {})

    @commands.FinishUpload.responder
    def finish_upload(self, transfer_id):
        return self._core.uploads.finish(transfer_id).addCallback(lambda _: {})

    @commands.CancelUpload.responder
    def cancel_upload(self, transfer_id):
        self._core.uploads.cancel(transfer_id)
        return {}
